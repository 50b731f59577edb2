// Package hold ends the holds the kernel puts on new containers. The kernel
// stops a new container's first exec before its first instruction, and marks
// its other early events (the runtime's setup) pending, until userspace has
// classified the container. The Holder parks those events, is told when the
// runtime names the container (Known), puts the container under its
// policies, lets the kernel stop holding it, and lets its first process run
// (or kills it when a rule forbids it to execute anything). It is the only
// code that applies policy to a new container. When the runtime cannot name
// a container in time, it is named from its cgroup path.
//
// It also finds what the kernel stopped but nobody reported (a full ring,
// or a sensor that died), and takes in the containers already running when
// the sensor starts.
package hold
