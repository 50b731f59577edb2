// Command kube is the cluster test's Kubernetes: kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet, kube-proxy or kubectl,
// chosen by the name it is run as (argv[0]), so that the whole of Kubernetes
// is linked once instead of six times.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // the JSON log format the components offer
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream's mains register them
	_ "k8s.io/component-base/metrics/prometheus/version"  // the version metric, likewise
	kubectl "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// commands maps each name the binary answers to onto its command.
func commands() map[string]func() *cobra.Command {
	return map[string]func() *cobra.Command{
		"kube-apiserver":          apiserver.NewAPIServerCommand,
		"kube-controller-manager": controllermanager.NewControllerManagerCommand,
		"kube-scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
		"kubelet":                 func() *cobra.Command { return kubelet.NewKubeletCommand(context.Background()) },
		"kube-proxy":              proxy.NewProxyCommand,
		"kubectl":                 kubectl.NewDefaultKubectlCommand,
	}
}

func main() {
	name := filepath.Base(os.Args[0])
	newCmd, ok := commands()[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "kube: run me as one of kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl (not %q)\n", name)
		os.Exit(2)
	}
	if name == "kubectl" {
		// kubectl reports its own errors, with the remote command's exit
		// code for exec, instead of cli.Run's generic exit 1.
		if err := cli.RunNoErrOutput(newCmd()); err != nil {
			kubectlutil.CheckErr(err)
		}
		return
	}
	os.Exit(cli.Run(newCmd()))
}
