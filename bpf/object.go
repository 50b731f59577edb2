package bpf

import "crypto/sha256"

// ObjectHash is the SHA-256 of the compiled programs this binary embeds:
// part of what tells a daemon whether pinned programs are its own.
func ObjectHash() [sha256.Size]byte { return sha256.Sum256(_SensorBytes) }
