package enforce

import (
	"os"
	"strings"
	"testing"
)

func TestValidFile(t *testing.T) {
	pols, probs := LoadFiles("testdata/web.yaml")
	if len(probs) > 0 {
		t.Fatalf("valid file rejected:\n%v", probs)
	}
	if len(pols) != 2 {
		t.Fatalf("%d policies, want 2", len(pols))
	}
	web := pols[0]
	s := web.Spec
	if web.Name != "web" || s.Mode != ModeEnforce || !s.DenyPrivileged || s.Selector.Labels["app"] != "web" ||
		len(s.ReadOnlyRootFilesystem.AllowWrites) != 2 || s.BindInterfaces.Interfaces[0] != "eth0" ||
		len(s.BindInterfaces.Ports) != 3 || s.BindInterfaces.Ports[1] != (PortRange{9000, 9100}) || s.BindInterfaces.Ports[2] != (PortRange{443, 443}) ||
		s.AllowedRegistries[0] != "registry.internal" || web.Source.Line != 1 {
		t.Fatalf("decoded %+v", web)
	}
	if pols[1].Name != "audit-all" || pols[1].Source.Line != 20 {
		t.Fatalf("second document %+v", pols[1])
	}
}

// TestEveryProblemAtOnce: one broken file, every mistake reported with its
// line and field path, in line order.
func TestEveryProblemAtOnce(t *testing.T) {
	_, probs := LoadFiles("testdata/broken.yaml")
	want := []string{
		`testdata/broken.yaml:1: apiVersion: must be ringfence.dev/v1alpha1, not "ringfence.dev/v1beta9"`,
		`testdata/broken.yaml:4: metadata.name: "Web_Policy" is not a valid name`,
		`testdata/broken.yaml:6: spec.mode: must be audit or enforce, not "block"`,
		`testdata/broken.yaml:8: spec.selector.imagez: unknown field`,
		`testdata/broken.yaml:9: spec.selector.names[0]: "web-[" is not a valid glob`,
		`testdata/broken.yaml:11: spec.readOnlyRootFilesystem.allowWrites[0]: "tmp/**" must be an absolute path`,
		`testdata/broken.yaml:11: spec.readOnlyRootFilesystem.allowWrites[1]: must be a string, not a number (7)`,
		`testdata/broken.yaml:13: spec.bindInterfaces.interfaces[0]: "eth0/1" is not an interface name`,
		`testdata/broken.yaml:14: spec.bindInterfaces.ports[0]: "0": port 0 cannot be allowed`,
		`testdata/broken.yaml:14: spec.bindInterfaces.ports[1]: "9100-9000": the range ends before it starts`,
		`testdata/broken.yaml:14: spec.bindInterfaces.ports[2]: "http" is not a port`,
		`testdata/broken.yaml:15: spec.allowedRegistries[0]: "bad registry" is not a registry host`,
		`testdata/broken.yaml:16: spec.denyPrivileged: must be true or false, not a string ("yes please")`,
	}
	if len(probs) != len(want) {
		t.Errorf("%d problems, want %d:", len(probs), len(want))
		for _, p := range probs {
			t.Log(p)
		}
	}
	for i := range min(len(probs), len(want)) {
		if !strings.HasPrefix(probs[i].String(), want[i]) {
			t.Errorf("problem %d:\n got %s\nwant %s...", i, probs[i], want[i])
		}
	}
}

func TestDocumentLevelProblems(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"empty file", "", "x.yaml:1: no RuntimePolicy document in the file"},
		{"not yaml", "a: [b\n", "x.yaml:1: not valid YAML"},
		{"missing spec", "apiVersion: ringfence.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: a}\n", "x.yaml:1: spec: required"},
		{"no rule", "apiVersion: ringfence.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: a}\nspec:\n  mode: audit\n", "x.yaml:5: spec: no rule"},
		{"mode missing", "apiVersion: ringfence.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: a}\nspec:\n  denyPrivileged: true\n", "x.yaml:5: spec.mode: required"},
		{"wrong kind", "apiVersion: ringfence.dev/v1alpha1\nkind: Pod\nmetadata: {name: a}\nspec: {mode: audit, denyPrivileged: true}\n", `x.yaml:2: kind: must be RuntimePolicy, not "Pod"`},
		{"spec is a list", "apiVersion: ringfence.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: a}\nspec: [1]\n", "x.yaml:4: spec: must be a mapping, not a list"},
		{"key twice", "apiVersion: ringfence.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: a}\nspec: {mode: audit, denyPrivileged: true, mode: enforce}\n", "spec.mode: given twice"},
		{"empty interfaces", "apiVersion: ringfence.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: a}\nspec: {mode: audit, bindInterfaces: {interfaces: []}}\n", "spec.bindInterfaces.interfaces: give at least one interface"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, probs := Parse("x.yaml", []byte(c.yaml))
			if len(probs) == 0 || !strings.Contains(probs.Error(), c.want) && !strings.Contains(probs[0].String(), c.want) {
				t.Fatalf("problems %v, want one with %q", probs, c.want)
			}
		})
	}
}

func TestDuplicateNamesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	doc := "apiVersion: ringfence.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: same}\nspec: {mode: audit, denyPrivileged: true}\n"
	for _, f := range []string{"a.yaml", "b.yaml"} {
		if err := os.WriteFile(dir+"/"+f, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pols, probs := LoadFiles(dir+"/a.yaml", dir+"/b.yaml")
	if pols != nil || len(probs) != 1 || !strings.Contains(probs[0].String(), `policy "same" is already defined at `+dir+"/a.yaml:1") {
		t.Fatalf("policies %v, problems %v", pols, probs)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/web.yaml", "testdata/broken.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("spec: {bindInterfaces: {ports: [\"1-\"]}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pols, probs := Parse("fuzz.yaml", data)
		if len(pols) == 0 && len(probs) == 0 {
			t.Fatal("neither a policy nor a problem")
		}
		for _, p := range probs {
			if p.Message == "" {
				t.Fatalf("problem without a message: %+v", p)
			}
		}
	})
}
