package sensor

import "testing"

// TestPodBelowParent: the sensor exempts its pod's cgroup only when that is
// strictly below a runtime parent: never a parent of every container.
func TestPodBelowParent(t *testing.T) {
	parents := []string{"kubepods.slice", "/k8s.io/"}
	for _, c := range []struct {
		dir  string
		want bool
	}{
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice", true},
		{"/k8s.io/pod", true},
		{"/kubepods.slice", false}, // the parent itself: every container
		{"/k8s.io", false},         // likewise
		{"/kubepods.slicex/pod", false},
		{"/system.slice", false},
		{"/", false},
	} {
		if got := podBelowParent(c.dir, parents); got != c.want {
			t.Errorf("%s: %v, want %v", c.dir, got, c.want)
		}
	}
	if podBelowParent("/anything/below", []string{"/"}) {
		t.Error("the cgroup root taken as a runtime parent")
	}
}

// TestExemptable: the sensor never exempts a cgroup that holds what it
// watches, since every cgroup made below an exempt one is exempt.
func TestExemptable(t *testing.T) {
	parents, watched := []string{"kubepods", "default"}, []string{"/ringfence-demo/app"}
	for _, c := range []struct {
		rel string
		ok  bool
	}{
		{"/kubepods/burstable/pod1/c1", true},
		{"/system.slice/ringfence.service", true},
		{"/", false},
		{"/kubepods", false},
		{"/ringfence-demo", false},     // above a watched cgroup
		{"/ringfence-demo/app", false}, // a watched cgroup itself
		{"/kubepodsx", true},
	} {
		if err := exemptable(c.rel, parents, watched); (err == nil) != c.ok {
			t.Errorf("%s: %v, want exemptable %v", c.rel, err, c.ok)
		}
	}
}
