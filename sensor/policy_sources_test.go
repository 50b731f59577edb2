package sensor

import (
	"strings"
	"testing"

	"github.com/ringfence/ringfence/enforce"
	"github.com/ringfence/ringfence/sensor/container"
)

// TestWithSources joins the files' policies with every source's, in source
// order, refuses a name given twice and carries each source's problems.
func TestWithSources(t *testing.T) {
	pol := func(name, file string) enforce.RuntimePolicy {
		return enforce.RuntimePolicy{Name: name, Source: enforce.Source{File: file, Line: 1}}
	}
	s := &Sensor{}
	s.sources.extra = map[string]sourceSet{
		"kubernetes": {policies: []enforce.RuntimePolicy{pol("b", "runtimepolicy/b"), pol("a", "runtimepolicy/a")},
			origins: []string{"runtimepolicy/b", "runtimepolicy/a"}},
		"other": {problems: enforce.Problems{{File: "other/x", Message: "broken"}}},
	}
	pols, files, problems := s.withSources([]enforce.RuntimePolicy{pol("a", "a.yaml")}, []string{"a.yaml"}, nil)
	if len(pols) != 2 || pols[1].Name != "b" {
		t.Errorf("policies %v", pols)
	}
	if strings.Join(files, ",") != "a.yaml,runtimepolicy/b,runtimepolicy/a" {
		t.Errorf("files %v", files)
	}
	if len(problems) != 2 || !strings.Contains(problems[0].String(), `policy "a" is already defined at a.yaml:1`) || problems[1].Message != "broken" {
		t.Errorf("problems %v", problems)
	}
}

// TestLabelsOf asks the pod labeler when there is one.
func TestLabelsOf(t *testing.T) {
	s := &Sensor{}
	info := container.Info{Labels: map[string]string{"a": "1"}}
	if got := s.labelsOf(info); got["a"] != "1" {
		t.Errorf("without a labeler: %v", got)
	}
	s.SetPodLabels(func(container.Info) map[string]string { return map[string]string{"app": "web"} })
	if got := s.labelsOf(info); got["app"] != "web" {
		t.Errorf("with a labeler: %v", got)
	}
}
