package sensor

import (
	"testing"

	"github.com/ringfence/ringfence/sensor/container"
)

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
