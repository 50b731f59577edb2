package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ringfence/ringfence/deploy/image"
	"github.com/ringfence/ringfence/test/k8s/cluster"
)

// env is the cluster with ringfence deployed by its kustomization.
type env struct {
	c       *cluster.Cluster
	dyn     dynamic.Interface
	root    string
	overlay string
	// imageArchive and version are make image's archive and tag.
	imageArchive, version string
}

// deployment is the test binary's one deployment, made by the first test
// that needs it.
var deployment struct {
	once sync.Once
	e    *env
	err  error
}

// deployed returns the cluster with ringfence applied and ready.
func deployed(t *testing.T) *env {
	t.Helper()
	c := needCluster(t)
	deployment.once.Do(func() { deployment.e, deployment.err = deploy(t, c) })
	if deployment.err != nil {
		t.Fatal(deployment.err)
	}
	return deployment.e
}

// deploy imports the image, applies deploy/kubernetes (through an overlay
// that sets the image tag and this cluster's paths), waits for the
// DaemonSet, then applies the default policy object.
func deploy(t *testing.T, c *cluster.Cluster) (*env, error) {
	archive, version := os.Getenv(imageEnv), os.Getenv(versionEnv)
	if archive == "" || version == "" {
		return nil, fmt.Errorf("%s and %s must name make image's archive and tag", imageEnv, versionEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := c.Import(ctx, archive); err != nil {
		return nil, err
	}
	e := &env{c: c, root: repoRoot(t), imageArchive: archive, version: version}
	var err error
	if e.overlay, err = writeOverlay(e.root, version); err != nil {
		return nil, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 100 // the corpus is dozens of dry runs
	if e.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, err
	}
	start := time.Now()
	if _, err := c.Run(ctx, "apply", "-k", e.overlay); err != nil {
		return nil, err
	}
	if err := c.WaitRollout(ctx, "ringfence", "ringfence", 2*time.Minute); err != nil {
		return nil, fmt.Errorf("DaemonSet not ready: %w\n%s", err, e.agentLogs(ctx))
	}
	t.Logf("kubectl apply -k to a ready DaemonSet: %s", time.Since(start).Round(time.Millisecond))
	if _, err := c.Run(ctx, "wait", "--for", "condition=established", "crd/runtimepolicies.ringfence.dev"); err != nil {
		return nil, err
	}
	if _, err := c.Run(ctx, "apply", "-k", filepath.Join(e.root, "deploy/kubernetes/policies")); err != nil {
		return nil, err
	}
	return e, e.waitStatus(ctx, "default-audit (audit)")
}

// writeOverlay writes the test's kustomization over deploy/kubernetes under
// build/ (kustomize takes only relative bases): the image tag of this
// build, and the cluster's containerd socket, store and API directories
// instead of the node's usual ones. Each patched entry is checked by name,
// so a change of the manifests fails here instead of patching the wrong
// entry.
func writeOverlay(root, version string) (string, error) {
	dir := filepath.Join(root, "build/k8stest/overlay")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	ops := []map[string]any{
		{"op": "test", "path": "/spec/template/spec/volumes/2/name", "value": "containerd"},
		{"op": "replace", "path": "/spec/template/spec/volumes/2/hostPath/path", "value": "/run/ringfence-k8s"},
		{"op": "replace", "path": "/spec/template/spec/containers/0/volumeMounts/2/mountPath", "value": "/run/ringfence-k8s"},
		{"op": "test", "path": "/spec/template/spec/containers/0/args/4", "value": "--containerd-socket=/run/containerd/containerd.sock"},
		{"op": "replace", "path": "/spec/template/spec/containers/0/args/4", "value": "--containerd-socket=/run/ringfence-k8s/containerd.sock"},
		{"op": "test", "path": "/spec/template/spec/volumes/3/name", "value": "store"},
		{"op": "replace", "path": "/spec/template/spec/volumes/3/hostPath/path", "value": "/var/lib/ringfence-k8s/agent-store"},
		{"op": "test", "path": "/spec/template/spec/volumes/4/name", "value": "api"},
		{"op": "replace", "path": "/spec/template/spec/volumes/4/hostPath/path", "value": "/run/ringfence-k8s/agent-api"},
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		return "", err
	}
	k := map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  []string{"../../../deploy/kubernetes"},
		"images":     []map[string]string{{"name": "ringfence", "newTag": version}},
		"patches":    []map[string]any{{"target": map[string]string{"kind": "DaemonSet", "name": "ringfence"}, "patch": string(patch)}},
	}
	data, err := json.MarshalIndent(k, "", "  ") // JSON is YAML
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "kustomization.yaml"), data, 0o644)
}

// agent runs ringfence inside the agent's pod.
func (e *env) agent(ctx context.Context, args ...string) (string, error) {
	return e.c.Run(ctx, append([]string{"-n", "ringfence", "exec", "ds/ringfence", "--", "ringfence"}, args...)...)
}

// waitStatus waits until `ringfence status` in the agent shows want.
func (e *env) waitStatus(ctx context.Context, want string) error {
	return poll(ctx, "agent status showing "+want, func() (string, bool) {
		out, err := e.agent(ctx, "status")
		return out, err == nil && strings.Contains(out, want)
	})
}

// waitStatusWithout waits until the agent's status no longer shows s.
func (e *env) waitStatusWithout(ctx context.Context, s string) error {
	return poll(ctx, "agent status without "+s, func() (string, bool) {
		out, err := e.agent(ctx, "status")
		return out, err == nil && !strings.Contains(out, s)
	})
}

// poll calls check every 300 ms until it reports done, and returns an
// error with what it last saw when ctx ends first.
func poll(ctx context.Context, what string, check func() (seen string, done bool)) error {
	for {
		seen, done := check()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w; last seen:\n%s", what, ctx.Err(), seen)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// agentLogs is the end of the log of each agent pod (two during a rolling
// update), for failure messages.
func (e *env) agentLogs(ctx context.Context) string {
	out, _ := e.c.Run(ctx, "-n", "ringfence", "logs", "-l", "app.kubernetes.io/name=ringfence", "--prefix", "--tail", "20")
	return out
}

// agentPod is what the test reads of an agent pod.
type agentPod struct {
	Name, Image string
	Ready       bool
	Deleting    bool
}

// agentPods lists the agent's pods.
func (e *env) agentPods(ctx context.Context) ([]agentPod, error) {
	out, err := e.c.Run(ctx, "-n", "ringfence", "get", "pods", "-l", "app.kubernetes.io/name=ringfence", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string  `json:"name"`
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Spec struct {
				Containers []struct {
					Image string `json:"image"`
				} `json:"containers"`
			} `json:"spec"`
			Status struct {
				Conditions []struct {
					Type, Status string
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, err
	}
	var pods []agentPod
	for _, it := range list.Items {
		p := agentPod{Name: it.Metadata.Name, Deleting: it.Metadata.DeletionTimestamp != nil}
		if len(it.Spec.Containers) > 0 {
			p.Image = it.Spec.Containers[0].Image
		}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" {
				p.Ready = c.Status == "True"
			}
		}
		pods = append(pods, p)
	}
	return pods, nil
}

// waitInCharge waits, after a rollout, until the agent that replaced the
// old one is in charge: one agent pod left (the old one's process has
// exited), Ready, of the DaemonSet's image, and the node's /readyz
// answered by a daemon out of standby (only that one listens now). It
// returns that pod.
func (e *env) waitInCharge(ctx context.Context) (agentPod, error) {
	var in agentPod
	err := poll(ctx, "the new agent in charge", func() (string, bool) {
		p, err := e.waitInChargeOnce(ctx)
		if err != nil {
			return err.Error(), false
		}
		in = p
		return "", true
	})
	return in, err
}

// waitInChargeOnce is one look of waitInCharge: the agent in charge, or
// what was seen instead.
func (e *env) waitInChargeOnce(ctx context.Context) (agentPod, error) {
	want, err := e.c.Run(ctx, "-n", "ringfence", "get", "ds", "ringfence", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
	if err != nil {
		return agentPod{}, err
	}
	pods, err := e.agentPods(ctx)
	if err != nil {
		return agentPod{}, err
	}
	seen := fmt.Sprintf("DaemonSet image %s, pods %+v", want, pods)
	if len(pods) != 1 || !pods[0].Ready || pods[0].Deleting || pods[0].Image != want {
		return agentPod{}, errors.New(seen)
	}
	body, code := httpGet(ctx, "http://"+cluster.NodeIP+":9464/readyz")
	if code != 200 || strings.Contains(body, "standby") {
		return agentPod{}, fmt.Errorf("%s; /readyz %d %q", seen, code, body)
	}
	return pods[0], nil
}

// httpGet returns the body and status of a GET (status 0: no answer).
func httpGet(ctx context.Context, url string) (string, int) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error(), 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error(), 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return string(b), resp.StatusCode
}

// exec runs a shell command in a pod of the test namespace.
func (e *env) exec(ctx context.Context, pod, script string) (string, error) {
	return e.c.Run(ctx, "-n", testNamespace, "exec", pod, "--", "sh", "-c", script)
}

// workloadFiles are the test programs the workload image carries.
func workloadFiles(t *testing.T) []image.File {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bindloop")
	cmd := exec.Command("go", "build", "-o", out, "./bindloop")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build bindloop: %v: %s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return []image.File{{Path: "bin/bindloop", Mode: 0o755, Data: data}}
}

// runCmd runs a host command and returns its combined output.
func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
