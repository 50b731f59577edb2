// Package store is the sensor's embedded event log: durable, append-only
// segment files of checksummed records, with a per-segment index of each
// container's records in time order, so that "what did container X do
// between 10:02 and 10:05" reads the part of the store that holds the
// answer, not the store.
//
// Layout of a store directory:
//
//	seg-<first sequence, 16 hex>.log    records: u32 length, u32 CRC-32C, payload
//	seg-<first sequence, 16 hex>.idx    written when the segment is sealed (idxfile.go)
//	seg-<first sequence, 16 hex>.live   the index of the segment being written (live.go)
//	catalog                             a summary of the sealed segments (catalog.go)
//
// A payload is a small binary prefix with the indexed fields (time, kind,
// verdict, container, and a loss report's counts) followed by the event's
// JSON. The writer batches records and syncs each batch; after a crash the
// last segment is scanned, a torn tail is cut off, a sealed segment whose
// index is missing, damaged or of an older format gets it rebuilt, and the
// live index and the catalog are written anew. Readers in other processes
// see everything the writer has synced, including the segment being filled.
package store
