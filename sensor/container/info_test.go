package container

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestKubernetesNames(t *testing.T) {
	tests := []struct {
		name                         string
		labels                       map[string]string
		annotations                  map[string]string
		wantName, wantPod, wantPodNS string
	}{
		{name: "plain container", wantName: "c1"},
		{
			name:     "kubernetes labels",
			labels:   map[string]string{LabelPodName: "web-0", LabelPodNamespace: "shop", LabelContainerName: "nginx"},
			wantName: "nginx", wantPod: "web-0", wantPodNS: "shop",
		},
		{
			name:        "CRI annotations only",
			annotations: map[string]string{annotSandboxName: "web-0", annotSandboxNS: "shop", annotContainerName: "nginx"},
			wantName:    "nginx", wantPod: "web-0", wantPodNS: "shop",
		},
		{
			name:        "labels win over annotations",
			labels:      map[string]string{LabelPodName: "from-label"},
			annotations: map[string]string{annotSandboxName: "from-annotation"},
			wantName:    "c1", wantPod: "from-label",
		},
		{name: "nerdctl name", labels: map[string]string{labelNerdctlName: "db"}, wantName: "db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := Info{ID: "c1", Labels: tt.labels}
			if tt.annotations != nil {
				i.Spec = &specs.Spec{Annotations: tt.annotations}
			}
			i.kubernetesNames()
			if i.Name != tt.wantName || i.Pod != tt.wantPod || i.PodNamespace != tt.wantPodNS {
				t.Errorf("got name %q pod %q/%q; want %q %q/%q", i.Name, i.PodNamespace, i.Pod, tt.wantName, tt.wantPodNS, tt.wantPod)
			}
		})
	}
}
