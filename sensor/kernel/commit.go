package kernel

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/ringfence/ringfence/bpf"
)

// Commit attaches the loaded programs, once the caller has filled the
// maps. With pins it then detaches the programs they replace (the two sets
// overlap: the stricter wins), pins the new links and the maps this load
// made, and records the layout and programs for the next daemon. When an
// attach fails, every new link is detached again and the pinned set stays
// as it was, in force. Adopted programs are attached already: Commit only
// records.
func (s *Sensor) Commit() error {
	if s.state == StateAdopted {
		return s.writeMeta(0)
	}
	var attached []link.Link
	fail := func(err error) error {
		for _, l := range attached {
			l.Close()
		}
		if s.pins != nil {
			os.RemoveAll(filepath.Join(s.pins.path, newLinksDir))
		}
		return err
	}
	for _, name := range sortedKeys(s.progs) {
		if name == s.opts.FailAttach {
			return fail(fmt.Errorf("attach %s: failed on purpose (failpoint)", name))
		}
		l, err := s.attach(name, s.progs[name], s.specs[name])
		if err != nil {
			return fail(err)
		}
		attached = append(attached, l)
		if s.pins != nil {
			if err := pinLink(l, filepath.Join(s.pins.path, newLinksDir, name)); err != nil {
				return fail(err)
			}
		}
	}
	s.links = append(s.links, attached...)
	for _, p := range s.progs {
		p.Close() // the links hold them now
	}
	s.progs = nil
	if s.pins == nil {
		return nil
	}
	if err := s.replacePins(); err != nil {
		return err
	}
	return s.writeMeta(0)
}

func pinLink(l link.Link, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	os.Remove(path) // an interrupted earlier attempt's
	if err := l.Pin(path); err != nil {
		return fmt.Errorf("pin link %s: %w", filepath.Base(path), err)
	}
	return nil
}

// replacePins detaches the pinned links the new ones replace, puts the new
// ones in their place, and pins the maps this load made over the old ones.
func (s *Sensor) replacePins() error {
	var errs []error
	for _, dir := range []string{linksDir, newLinksDir} {
		if dir == newLinksDir {
			continue // this load's, moved below
		}
		entries, _ := os.ReadDir(filepath.Join(s.pins.path, dir))
		for _, e := range entries {
			errs = append(errs, unpinLink(filepath.Join(s.pins.path, dir, e.Name())))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detach the replaced programs: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(s.pins.path, newLinksDir))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(s.pins.path, newLinksDir, e.Name()), s.pins.linkPath(e.Name())); err != nil {
			return fmt.Errorf("pin link %s: %w", e.Name(), err)
		}
	}
	os.Remove(filepath.Join(s.pins.path, newLinksDir))
	return s.pinFreshMaps()
}

// unpinLink detaches a pinned link: once unpinned and closed, nothing
// holds it.
func unpinLink(path string) error {
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pinned link %s: %w", filepath.Base(path), err)
	}
	defer l.Close()
	return l.Unpin()
}

// pinFreshMaps pins the maps this load made, over the pins they replace.
func (s *Sensor) pinFreshMaps() error {
	byName := s.mapsByName()
	for _, name := range sortedKeys(s.fresh) {
		if !isDataMap(name) && name != bpf.SensorMapMeta && name != bpf.SensorMapMapLayouts {
			continue
		}
		path := s.pins.mapPath(name)
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("unpin map %s: %w", name, err)
		}
		if err := byName[name].Pin(path); err != nil {
			return fmt.Errorf("pin map %s: %w", name, err)
		}
		delete(s.fresh, name)
	}
	return nil
}

// writeMeta records, for the next daemon, the layout, the programs, the
// build and the policy generation in force (0: unchanged).
func (s *Sensor) writeMeta(generation uint64) error {
	if s.pins == nil {
		return nil
	}
	if s.state == StateAdopted && s.fresh[bpf.SensorMapMeta] {
		// Adopted: the new meta and layouts maps replace the pinned ones.
		if err := s.pinFreshMaps(); err != nil {
			return err
		}
	}
	var m bpf.SensorPinMeta
	if err := s.maps.Meta.Lookup(uint32(0), &m); err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	if m.Abi == 0 && s.pins.meta != nil {
		m = *s.pins.meta // adopted: keep what the pinned meta said
	}
	m.Abi = uint32(bpf.SensorAbiVersionABI_VERSION)
	m.Layout = layoutOf(s.layouts)
	m.Programs = s.programs
	if generation != 0 {
		m.Generation = generation
	}
	m.UpdatedNs = uint64(time.Now().UnixNano())
	m.Version = [bpf.SensorAbiLimitMETA_NAME_LEN]int8{}
	cString(m.Version[:], s.opts.Version)
	if err := s.maps.Meta.Update(uint32(0), &m, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	for name, l := range s.layouts {
		var k bpf.SensorMapName
		cString(k.Name[:], name)
		v := bpf.SensorLayoutHash{Hash: l}
		if err := s.maps.MapLayouts.Update(&k, &v, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("map layouts: %w", err)
		}
	}
	return nil
}

// SetGeneration records the policy generation in force with the pins.
func (s *Sensor) SetGeneration(generation uint64) error {
	if s.pins == nil || len(s.progs) > 0 {
		return nil // not committed yet: Commit records it
	}
	return s.writeMeta(generation)
}

// Pinned describes the pinned state: what the last daemon recorded, and
// what this one loads.
type Pinned struct {
	Dir string `json:"dir,omitempty"`
	// State is what this daemon did with what it found: new, adopted or
	// upgrade.
	State State `json:"state"`
	// Layout and Programs are the hashes this build records; Generation
	// the policy generation in force.
	Layout     string `json:"layout"`
	Programs   string `json:"programs"`
	Generation uint64 `json:"generation"`
	// FoundVersion, FoundLayout and FoundPrograms are what the pinned
	// state said when this daemon started (empty: nothing was pinned).
	FoundVersion  string `json:"found_version,omitempty"`
	FoundLayout   string `json:"found_layout,omitempty"`
	FoundPrograms string `json:"found_programs,omitempty"`
}

// Pinned describes the pinned state for the status; zero without pins.
func (s *Sensor) Pinned() Pinned {
	if s.opts.PinDir == "" {
		return Pinned{}
	}
	p := Pinned{Dir: s.opts.PinDir, State: s.state, Layout: short(layoutOf(s.layouts)), Programs: short(s.programs)}
	var m bpf.SensorPinMeta
	if s.maps.Meta != nil && s.maps.Meta.Lookup(uint32(0), &m) == nil {
		p.Generation = m.Generation
	}
	if s.pins != nil && s.pins.meta != nil {
		f := s.pins.meta
		p.FoundVersion, p.FoundLayout, p.FoundPrograms = cName(f.Version[:]), short(f.Layout), short(f.Programs)
	}
	return p
}

func short(h [sha256.Size]byte) string { return fmt.Sprintf("%x", h[:6]) }
