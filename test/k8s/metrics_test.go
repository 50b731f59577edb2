package k8s

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// testMetricsScrape follows what a Prometheus scrape would: the
// ringfence-metrics Service's endpoints are the agents, each serves
// /metrics; and the ServiceMonitor of components/servicemonitor selects
// that Service and port (the cluster has no Prometheus Operator, so the
// component is built with kustomize and checked against the Service).
func testMetricsScrape(t *testing.T, e *env) {
	ctx := timeout(t, time.Minute)
	out, err := e.c.Run(ctx, "-n", "ringfence", "get", "endpointslices", "-l", "kubernetes.io/service-name=ringfence-metrics",
		"-o", `jsonpath={range .items[*].endpoints[*]}{.addresses[0]}{"\n"}{end}`)
	if err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("the metrics Service has no endpoint: %v %q", err, out)
	}
	for _, addr := range strings.Fields(out) {
		body := get(ctx, t, "http://"+addr+":9464/metrics")
		if !strings.Contains(body, "ringfence_build_info") || !strings.Contains(body, "ringfence_policy_objects_refused_total") {
			t.Errorf("%s:9464/metrics lacks ringfence's metrics", addr)
		}
	}
	svc, mon := e.serviceAndMonitor(ctx, t)
	for k, v := range mon.Spec.Selector.MatchLabels {
		if svc.Metadata.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s, the Service has %q", k, v, svc.Metadata.Labels[k])
		}
	}
	if len(mon.Spec.Endpoints) != 1 || len(svc.Spec.Ports) != 1 || mon.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name {
		t.Errorf("the ServiceMonitor's endpoints %+v do not name the Service's port %+v", mon.Spec.Endpoints, svc.Spec.Ports)
	}
}

// manifest is what the check reads of the Service and the ServiceMonitor.
type manifest struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Ports     []struct{ Name string }                 `json:"ports"`
		Selector  struct{ MatchLabels map[string]string } `json:"selector"`
		Endpoints []struct{ Port string }                 `json:"endpoints"`
	} `json:"spec"`
}

// serviceAndMonitor builds deploy/kubernetes with the servicemonitor
// component and returns its Service and ServiceMonitor.
func (e *env) serviceAndMonitor(ctx context.Context, t *testing.T) (svc, mon manifest) {
	t.Helper()
	dir := filepath.Join(e.root, "build/k8stest/with-servicemonitor")
	k := `{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
 "resources": ["../../../deploy/kubernetes"], "components": ["../../../deploy/kubernetes/components/servicemonitor"]}`
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := e.c.Run(ctx, "kustomize", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(out, "\n---\n") {
		var m manifest
		data, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil || json.Unmarshal(data, &m) != nil {
			t.Fatalf("kustomize output: %v", err)
		}
		switch m.Kind {
		case "Service":
			svc = m
		case "ServiceMonitor":
			mon = m
		}
	}
	if svc.Kind == "" || mon.Kind == "" {
		t.Fatal("the build lacks the Service or the ServiceMonitor")
	}
	return svc, mon
}

func get(ctx context.Context, t *testing.T, url string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(body)
}
