package k8s

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/kube"
)

// policyGVR is the RuntimePolicy objects' resource, for the test's client.
var policyGVR = schema.GroupVersionResource{Group: kube.PolicyResource.Group, Version: kube.PolicyResource.Version, Resource: kube.PolicyResource.Plural}

// corpusCase is one policy of testdata/policies: its file name says what
// both sides must say (valid-, invalid-, or differs-: the parser reads it
// and the API server refuses it, for the reason its "# why:" gives), and
// "# path:" the field path both must name when refusing.
type corpusCase struct {
	name, kind, path, why string
	data                  []byte
}

func loadCorpus(t *testing.T) []corpusCase {
	t.Helper()
	files, err := filepath.Glob("testdata/policies/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	var out []corpusCase
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c := corpusCase{name: strings.TrimSuffix(filepath.Base(f), ".yaml"), data: data}
		c.kind, _, _ = strings.Cut(c.name, "-")
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "# path: "); ok {
				c.path = v
			}
			if v, ok := strings.CutPrefix(l, "# why: "); ok {
				c.why = v
			}
		}
		if c.kind != "valid" && c.path == "" || c.kind == "differs" && c.why == "" {
			t.Fatalf("%s: an invalid case needs '# path:', a differing one '# why:' too", f)
		}
		out = append(out, c)
	}
	return out
}

// testSchemaAgreesWithParser sends every policy of the corpus to the API
// server (a server-side dry run with strict field validation: the CRD's
// schema and CEL rules run for real) and to the policy parser, and checks
// both accept the valid ones and refuse the invalid ones naming the same
// field; and that where they are known to differ, they differ as said and
// the agent (the engine) sides with the API server, or the case says why.
func testSchemaAgreesWithParser(t *testing.T, env *env) {
	for _, c := range loadCorpus(t) {
		t.Run(c.name, func(t *testing.T) {
			pols, problems := enforce.Parse(c.name+".yaml", c.data)
			apiErr := env.dryRunCreate(t, c.data)
			switch c.kind {
			case "valid":
				if len(problems) > 0 {
					t.Errorf("parser refuses a valid policy: %v", problems)
				}
				if apiErr != nil {
					t.Errorf("API server refuses a valid policy: %v", apiErr)
				}
			case "invalid":
				if !mentions(problems, c.path) {
					t.Errorf("parser: want a problem at %s, got %v", c.path, problems)
				}
				if apiErr == nil || !strings.Contains(apiErr.Error(), c.path) {
					t.Errorf("API server: want a refusal naming %s, got %v", c.path, apiErr)
				}
			case "differs":
				if len(problems) > 0 {
					t.Errorf("parser: this case is documented as read by policy check, got %v", problems)
				}
				if apiErr == nil || !strings.Contains(apiErr.Error(), c.path) {
					t.Errorf("API server: want a refusal naming %s, got %v", c.path, apiErr)
				}
				if strings.Contains(c.why, "agent refuses") && len(pols) == 1 {
					if err := loadOnce(pols[0]); err == nil || !strings.Contains(err.Error(), c.path) {
						t.Errorf("engine: want a refusal naming %s, got %v", c.path, err)
					}
				}
			default:
				t.Fatalf("unknown case kind %q", c.kind)
			}
		})
	}
}

func mentions(problems enforce.Problems, path string) bool {
	for _, p := range problems {
		if strings.HasPrefix(p.Path, path) {
			return true
		}
	}
	return false
}

// dryRunCreate asks the API server to create the policy document without
// storing it.
func (e *env) dryRunCreate(t *testing.T, data []byte) error {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		t.Fatalf("corpus YAML: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := e.dyn.Resource(policyGVR).Create(ctx, &unstructured.Unstructured{Object: obj},
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
	return err
}

// loadOnce loads one policy into an engine over a kernel that accepts
// everything: what the agent says beyond the parser.
func loadOnce(p enforce.RuntimePolicy) error {
	return enforce.NewEngine(nopKernel{}, enforce.Capabilities{Bind: true}, nil, nil).Load([]enforce.RuntimePolicy{p}, nil)
}

type nopKernel struct{}

func (nopKernel) PutPolicy(uint32, enforce.KernelPolicy, []enforce.AllowWrite) error { return nil }
func (nopKernel) DeletePolicy(uint32, []enforce.AllowWrite) error                    { return nil }
func (nopKernel) PutMember(uint64, enforce.Member) error                             { return nil }
func (nopKernel) DeleteMember(uint64) error                                          { return nil }
func (nopKernel) PutBindAddr(uint64, uint32, netip.Addr) error                       { return nil }
func (nopKernel) DeleteBindAddr(uint64, uint32, netip.Addr) error                    { return nil }
func (nopKernel) PutBindIfindex(uint64, uint32, uint32) error                        { return nil }
func (nopKernel) DeleteBindIfindex(uint64, uint32, uint32) error                     { return nil }
func (nopKernel) PutRoot(uint64, enforce.RootFS) error                               { return nil }
func (nopKernel) DeleteRoot(uint64, enforce.RootFS) error                            { return nil }
