package kernel

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/bpf"
)

// DefaultPinDir is where the sensor pins its kernel state by default.
const DefaultPinDir = "/sys/fs/bpf/ringfence"

// The pin directory holds maps/<name> and links/<program>; a new set of
// links is pinned under links_new/ before it replaces links/.
const (
	mapsDir     = "maps"
	linksDir    = "links"
	newLinksDir = "links_new"
)

// ErrNotOurs is wrapped by errors about a pin directory that is not
// ringfence's, or of an ABI version this build does not know.
var ErrNotOurs = errors.New("not ringfence's pinned state")

// ErrPinsInUse is wrapped by the error of a pin directory whose lock another
// process (a running daemon, an uninstall) holds.
var ErrPinsInUse = errors.New("in use by another ringfence daemon")

// pinDir is an open pin directory, locked for one daemon.
type pinDir struct {
	path string
	lock *PinLock
	// borrowed: the lock was taken by the caller of Load (Options.Lock),
	// who releases it; close leaves it held.
	borrowed bool
	// What the last daemon recorded, when it recorded anything.
	meta    *bpf.SensorPinMeta
	layouts map[string][sha256.Size]byte
}

// PinLock is the exclusive lock on a pin directory (a flock on the
// directory): one daemon at a time enforces from it.
type PinLock struct {
	dir string
	f   *os.File
}

// LockPins makes the pin directory dir (mounting nothing: bpffs must be
// mounted there or above) and takes its lock. When another process holds
// it, LockPins returns an error wrapping ErrPinsInUse, or with wait polls
// until the lock is free or ctx ends (returning ctx's error). A daemon
// that takes it before opening anything else (its store, its sockets)
// passes it to Load in Options.Lock, and releases it last.
func LockPins(ctx context.Context, dir string, wait bool) (_ *PinLock, err error) {
	var sfs unix.Statfs_t
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pin directory: %w", err)
	}
	if err := unix.Statfs(dir, &sfs); err != nil {
		return nil, fmt.Errorf("pin directory: %w", err)
	}
	if sfs.Type != unix.BPF_FS_MAGIC {
		return nil, fmt.Errorf("pin directory %s: not on a bpf filesystem", dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("pin directory: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &PinLock{dir: dir, f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || !wait {
			f.Close()
			return nil, fmt.Errorf("pin directory %s is %w: %w", dir, ErrPinsInUse, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Release releases the lock; the pins stay.
func (l *PinLock) Release() error { return l.f.Close() }

// PinnedInForce reports whether dir holds a committed pinned set of this
// ABI with its links attached: the kernel enforces from it whether or not
// a daemon runs. It takes no lock (a daemon in standby asks while another
// holds it); why not, when not.
func PinnedInForce(dir string) (bool, string) {
	p := &pinDir{path: dir}
	if err := p.readMeta(); err != nil {
		return false, err.Error()
	}
	if p.meta == nil {
		return false, "no committed pinned set in " + dir
	}
	links, err := os.ReadDir(filepath.Join(dir, linksDir))
	if err != nil {
		return false, err.Error()
	}
	if len(links) == 0 {
		return false, "no pinned link in " + dir
	}
	return true, fmt.Sprintf("pinned set in force: %d links, daemon build %s", len(links), cName(p.meta.Version[:]))
}

// openPins takes the pin directory's lock (or uses held, taken by the
// caller), makes its subdirectories and reads what it records. A second
// daemon fails here, with an error that says so.
func openPins(dir string, held *PinLock) (_ *pinDir, err error) {
	p := &pinDir{path: dir, lock: held, borrowed: held != nil}
	if held == nil {
		if p.lock, err = LockPins(context.Background(), dir, false); err != nil {
			return nil, err
		}
	} else if held.dir != dir {
		return nil, fmt.Errorf("pin directory %s: the lock given is %s's", dir, held.dir)
	}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	for _, sub := range []string{mapsDir, linksDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("pin directory: %w", err)
		}
	}
	if err := p.readMeta(); err != nil {
		return nil, err
	}
	return p, nil
}

// readMeta reads the pinned meta and map_layouts, when there are some.
func (p *pinDir) readMeta() error {
	meta, err := ebpf.LoadPinnedMap(p.mapPath(bpf.SensorMapMeta), nil)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pinned meta: %w", err)
	}
	defer meta.Close()
	var m bpf.SensorPinMeta
	if err := meta.Lookup(uint32(0), &m); err != nil {
		return fmt.Errorf("pinned meta: %w", err)
	}
	if m.Abi == 0 {
		return nil // made, never committed: nothing to adopt
	}
	if m.Abi != uint32(bpf.SensorAbiVersionABI_VERSION) {
		return fmt.Errorf("pin directory %s: ABI version %d, this build knows %d: %w (ringfence uninstall removes it)", p.path, m.Abi, bpf.SensorAbiVersionABI_VERSION, ErrNotOurs)
	}
	p.meta = &m
	layouts, err := ebpf.LoadPinnedMap(p.mapPath("map_layouts"), nil)
	if err != nil {
		return fmt.Errorf("pinned map layouts: %w", err)
	}
	defer layouts.Close()
	p.layouts = make(map[string][sha256.Size]byte)
	var (
		k bpf.SensorMapName
		v bpf.SensorLayoutHash
	)
	it := layouts.Iterate()
	for it.Next(&k, &v) {
		p.layouts[cName(k.Name[:])] = v.Hash
	}
	return it.Err()
}

func (p *pinDir) mapPath(name string) string  { return filepath.Join(p.path, mapsDir, name) }
func (p *pinDir) linkPath(name string) string { return filepath.Join(p.path, linksDir, name) }

// close releases the lock, unless the caller of Load holds it; the pins
// stay.
func (p *pinDir) close() error {
	if p.borrowed {
		return nil
	}
	return p.lock.Release()
}

// reusable returns the pinned maps whose layout is this build's, by name.
func (p *pinDir) reusable(spec *ebpf.CollectionSpec, layouts map[string][sha256.Size]byte) (map[string]*ebpf.Map, error) {
	out := make(map[string]*ebpf.Map)
	if p.meta == nil {
		return out, nil
	}
	for name := range spec.Maps {
		if !isDataMap(name) || p.layouts[name] != layouts[name] {
			continue
		}
		m, err := ebpf.LoadPinnedMap(p.mapPath(name), nil)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("pinned map %s: %w", name, err)
		}
		out[name] = m
	}
	return out, nil
}

// pinnedLinks opens the pinned links, by program name.
func (p *pinDir) pinnedLinks() (map[string]link.Link, error) {
	out := make(map[string]link.Link)
	entries, err := os.ReadDir(filepath.Join(p.path, linksDir))
	if err != nil {
		return nil, fmt.Errorf("pinned links: %w", err)
	}
	for _, e := range entries {
		l, err := link.LoadPinnedLink(p.linkPath(e.Name()), nil)
		if err != nil {
			for _, l := range out {
				l.Close()
			}
			return nil, fmt.Errorf("pinned link %s: %w", e.Name(), err)
		}
		out[e.Name()] = l
	}
	return out, nil
}

// isDataMap reports whether a map is state to carry over (the working
// records are per-CPU working space, and a daemon writes its own meta).
func isDataMap(name string) bool {
	switch name {
	case bpf.SensorMapReportRecords, bpf.SensorMapTaskRecords, bpf.SensorMapMeta, bpf.SensorMapMapLayouts, ".rodata", ".data", ".bss":
		return false
	}
	return !strings.HasPrefix(name, ".")
}

// mapLayouts returns each map's layout hash: its type, sizes, capacity,
// flags, and the shapes of its key and value types.
func mapLayouts(spec *ebpf.CollectionSpec) map[string][sha256.Size]byte {
	out := make(map[string][sha256.Size]byte, len(spec.Maps))
	for name, ms := range spec.Maps {
		out[name] = sha256.Sum256([]byte(fmt.Sprintf("%s %d/%d %d %#x %d key %s value %s",
			ms.Type, ms.KeySize, ms.ValueSize, ms.MaxEntries, ms.Flags, bpf.SensorAbiVersionABI_VERSION,
			typeSig(ms.Key, 0), typeSig(ms.Value, 0))))
	}
	return out
}

// layoutOf hashes every map's layout into one.
func layoutOf(layouts map[string][sha256.Size]byte) [sha256.Size]byte {
	h := sha256.New()
	names := make([]string, 0, len(layouts))
	for n := range layouts {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		l := layouts[n]
		h.Write([]byte(n))
		h.Write(l[:])
	}
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out
}

// typeSig describes a BTF type's shape: sizes, member names and offsets,
// array lengths. Two maps agree on their data when their key and value
// shapes do.
func typeSig(t btf.Type, depth int) string {
	if t == nil {
		return "-"
	}
	if depth > 8 {
		return "…"
	}
	switch t := t.(type) {
	case *btf.Typedef:
		return typeSig(t.Type, depth)
	case *btf.Volatile:
		return typeSig(t.Type, depth)
	case *btf.Const:
		return typeSig(t.Type, depth)
	case *btf.Int:
		return fmt.Sprintf("int%d", t.Size*8)
	case *btf.Enum:
		return fmt.Sprintf("enum%d", t.Size*8)
	case *btf.Pointer:
		return "ptr"
	case *btf.Array:
		return fmt.Sprintf("[%d]%s", t.Nelems, typeSig(t.Type, depth+1))
	case *btf.Struct:
		return "struct{" + membersSig(t.Size, t.Members, depth) + "}"
	case *btf.Union:
		return "union{" + membersSig(t.Size, t.Members, depth) + "}"
	}
	return fmt.Sprintf("%T", t)
}

func membersSig(size uint32, members []btf.Member, depth int) string {
	parts := []string{fmt.Sprint(size)}
	for _, m := range members {
		parts = append(parts, fmt.Sprintf("%s@%d:%s", m.Name, m.Offset.Bytes(), typeSig(m.Type, depth+1)))
	}
	return strings.Join(parts, ",")
}

func cName(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

func closeAll(maps map[string]*ebpf.Map) {
	for _, m := range maps {
		m.Close()
	}
}

// carryOver brings the pinned state into the maps this load made where the
// data agrees and only the capacity changed (--kernel-map-entries): every
// entry is copied before anything is attached. A pinned ring this load
// replaces is kept to be drained (OldRing). A map whose key, value or type
// changed is refused: nothing of it could be carried over in time.
// Per-CPU counters start again.
func (s *Sensor) carryOver(spec *ebpf.CollectionSpec) error {
	if s.pins == nil || s.pins.meta == nil {
		return nil
	}
	byName := s.mapsByName()
	for _, name := range sortedKeys(s.fresh) {
		if !isDataMap(name) {
			continue
		}
		old, err := ebpf.LoadPinnedMap(s.pins.mapPath(name), nil)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("pinned map %s: %w", name, err)
		}
		if name == bpf.SensorMapEvents {
			s.oldRing = old
			continue
		}
		err = nil
		switch {
		case s.pins.layouts[name] != layoutWithCapacity(spec.Maps[name], old.MaxEntries()):
			// Its entries cannot be read as this build's: what they
			// hold would be missing until rebuilt, a window without
			// those rules. abi_test ties such a change to a new ABI
			// version; refused either way.
			err = fmt.Errorf("its layout changed, not only its capacity: %w (ringfence uninstall removes the pinned state; the rules are off until the next start)", ErrNotOurs)
		case !perCPU(old.Type()):
			err = copyEntries(old, byName[name])
		}
		old.Close()
		if err != nil {
			return fmt.Errorf("carry map %s over: %w", name, err)
		}
	}
	return nil
}

// layoutWithCapacity is a map's layout hash were its capacity entries.
func layoutWithCapacity(ms *ebpf.MapSpec, entries uint32) [sha256.Size]byte {
	c := ms.Copy()
	c.MaxEntries = entries
	return mapLayouts(&ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{"m": c}})["m"]
}

// copyEntries copies every entry of from into to, whose key and value
// are the same.
func copyEntries(from, to *ebpf.Map) error {
	k := make([]byte, from.KeySize())
	v := make([]byte, from.ValueSize())
	it := from.Iterate()
	for it.Next(&k, &v) {
		if err := to.Put(k, v); err != nil {
			return err
		}
	}
	return it.Err()
}

// OldRing returns a reader of the pinned ring this load replaced (its size
// changed), for the sensor to drain what the old programs wrote; nil when
// there is none. The ring is released once its reader ends.
func (s *Sensor) OldRing() (*Ring, error) {
	if s.oldRing == nil {
		return nil, nil
	}
	r, err := ringbuf.NewReader(s.oldRing)
	if err != nil {
		return nil, fmt.Errorf("open the replaced event ring: %w", err)
	}
	s.oldRing.Close()
	s.oldRing = nil
	return &Ring{r: r}, nil
}

// Uninstall detaches and removes what ringfence pinned in dir, and nothing
// else there: every pinned link (its program detached), every pinned map,
// the directory. It refuses while a daemon holds the directory. It returns
// what it removed and the cgroups that were held (pending), whose stopped
// processes the caller lets go.
func Uninstall(dir string) (removed []string, pending []uint64, err error) {
	return UninstallLocked(dir, nil)
}

// UninstallLocked is Uninstall by the holder of dir's lock (LockPins): a
// daemon that stopped and removes what it pinned, no other process taking
// the directory in between. The lock stays held, for its holder to release.
func UninstallLocked(dir string, lock *PinLock) (removed []string, pending []uint64, err error) {
	p, err := openPins(dir, lock)
	if err != nil {
		return nil, nil, err
	}
	defer p.close()
	if pm, err := ebpf.LoadPinnedMap(p.mapPath(bpf.SensorMapPending), nil); err == nil {
		var (
			id uint64
			t  uint64
		)
		it := pm.Iterate()
		for it.Next(&id, &t) {
			pending = append(pending, id)
		}
		pm.Close()
	}
	for _, sub := range []string{linksDir, newLinksDir} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			if err := unpinLink(filepath.Join(dir, sub, e.Name())); err != nil {
				return removed, pending, err
			}
			removed = append(removed, "link "+e.Name())
		}
		os.Remove(filepath.Join(dir, sub))
	}
	entries, _ := os.ReadDir(filepath.Join(dir, mapsDir))
	for _, e := range entries {
		if err := os.Remove(filepath.Join(dir, mapsDir, e.Name())); err != nil {
			return removed, pending, fmt.Errorf("unpin map %s: %w", e.Name(), err)
		}
		removed = append(removed, "map "+e.Name())
	}
	os.Remove(filepath.Join(dir, mapsDir))
	if err := os.Remove(dir); err != nil {
		return removed, pending, fmt.Errorf("remove %s: %w", dir, err)
	}
	return removed, pending, nil
}

func perCPU(t ebpf.MapType) bool {
	switch t {
	case ebpf.PerCPUHash, ebpf.PerCPUArray, ebpf.LRUCPUHash, ebpf.PerCPUCGroupStorage:
		return true
	}
	return false
}
