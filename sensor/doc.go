// Package sensor wires the sensor's parts together: it probes and loads the
// kernel programs, reads the event ring, decodes and enriches events, hands
// them to sinks, and publishes its status. It holds no logic of its own
// beyond connecting those stages.
package sensor
