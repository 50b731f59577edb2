// Package api is the daemon's control surface: HTTP on a unix socket only
// (mode 0600, root), never TCP. It serves the status, the watched cgroups,
// stored-event queries and a live event stream, and has the matching client.
package api
