// Package kube connects the sensor to the Kubernetes API of its node:
// RuntimePolicy objects (ringfence.dev/v1alpha1) watched with a client-go
// informer and applied through the same checks and atomic switch as policy
// files, with the objects the agent refuses reported as Events on them, in
// the log and in a metric; and an index of the node's pods (a field
// selector on spec.nodeName), so that policy selectors match pod labels.
package kube
