// Package store is the sensor's embedded event log: durable, append-only
// segment files of checksummed records, with a per-segment index sorted by
// container and time, so that "what did container X do between 10:02 and
// 10:05" reads only the records it returns.
//
// Layout of a store directory:
//
//	seg-<first sequence, 16 hex>.log   records: u32 length, u32 CRC-32C, payload
//	seg-<first sequence, 16 hex>.idx   written when the segment is sealed
//
// A payload is a small binary prefix with the indexed fields (time, kind,
// verdict, container) followed by the event's JSON. The writer batches
// records and syncs each batch (at least once a second); after a crash the
// last segment is scanned, a torn tail is cut off, and a sealed segment
// without its index gets the index rebuilt. Readers in other processes see
// everything the writer has written, including the segment being filled.
package store
