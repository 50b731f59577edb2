// Package enforce is the policy model: RuntimePolicy documents parsed from
// YAML strictly (unknown fields are errors), validated with every problem
// reported at once as FILE:LINE: field.path: message. It is pure Go and
// touches no kernel object.
package enforce
