package cluster

import (
	"fmt"
	"os/exec"
	"strings"
)

// The cluster's addresses. Every one is made on this machine: the node's
// address sits on a bridge with no ports, the pods on a bridge of their own,
// and the Service range is routed onto the node's bridge, where kube-proxy
// turns a ClusterIP into the node's address. None of them routes out.
const (
	nodeBridge  = "rfk8s0"
	podBridge   = "rfk8scni0"
	NodeIP      = "172.31.254.1"
	podCIDR     = "172.31.252.0/24"
	podGateway  = "172.31.252.1"
	serviceCIDR = "172.31.253.0/24"
	// apiServiceIP is the kubernetes Service's ClusterIP: the first of the range.
	apiServiceIP = "172.31.253.1"
)

// ip runs the ip command.
func ip(args ...string) error { return run("ip", args...) }

// setUpNetwork makes the two bridges and the Service route, then checks
// that the node, pod and Service addresses all stay on them.
func setUpNetwork() error {
	steps := [][]string{
		{"link", "add", nodeBridge, "type", "bridge"},
		{"addr", "add", NodeIP + "/32", "dev", nodeBridge},
		{"link", "set", nodeBridge, "up"},
		{"route", "add", serviceCIDR, "dev", nodeBridge, "src", NodeIP},
		// Made before the first pod, so its route exists before any pod
		// does; the CNI bridge plugin takes it as it finds it.
		{"link", "add", podBridge, "type", "bridge"},
		{"addr", "add", podGateway + "/24", "dev", podBridge},
		{"link", "set", podBridge, "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return checkRoutes()
}

// checkRoutes fails unless each of the cluster's ranges routes onto one of
// its bridges.
func checkRoutes() error {
	for addr, dev := range map[string]string{NodeIP: "lo", "172.31.252.77": podBridge, "172.31.253.77": nodeBridge, apiServiceIP: nodeBridge} {
		out, err := exec.Command("ip", "route", "get", addr).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip route get %s: %v: %s", addr, err, out)
		}
		if !strings.Contains(string(out), " dev "+dev+" ") {
			return fmt.Errorf("%s would leave through another device than %s: %s", addr, dev, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// tearDownNetwork removes the bridges; their addresses and routes go with
// them. Missing bridges are not an error (an Up that failed half-way).
func tearDownNetwork() error {
	var errs []string
	for _, b := range []string{podBridge, nodeBridge} {
		if err := exec.Command("ip", "link", "show", b).Run(); err != nil {
			continue
		}
		if err := ip("link", "del", b); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
