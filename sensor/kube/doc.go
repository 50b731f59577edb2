// Package kube connects the sensor to the Kubernetes API of its node, with
// a small client of its own (api.go, config.go): RuntimePolicy objects
// (ringfence.dev/v1alpha1), listed and watched (informer.go), are applied
// through the same checks and atomic switch as policy files, with the
// objects the agent refuses reported as Events on them (events.go), in the
// log and in a metric; and an index of the node's pods (a field selector
// on spec.nodeName), so that policy selectors match pod labels.
package kube
