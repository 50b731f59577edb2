package container

import "sync"

// Identity names the container of a cgroup on the event path: the cache's
// entry for the cgroup, or, for a cgroup made inside a container (by the
// container itself, or its runtime), that container's. Which container a
// cgroup belongs to never changes (the kernel decides it when the cgroup is
// made, before anything runs in it), so the answer is remembered until the
// cgroup is forgotten.
type Identity struct {
	cache *Cache
	owner func(cgroup uint64) (uint64, bool)

	mu     sync.Mutex
	owners map[uint64]uint64
}

// NewIdentity returns an Identity over cache; owner asks the kernel which
// container cgroup a cgroup made inside a container belongs to.
func NewIdentity(cache *Cache, owner func(cgroup uint64) (uint64, bool)) *Identity {
	return &Identity{cache: cache, owner: owner, owners: make(map[uint64]uint64)}
}

// Of returns the container of a cgroup: one cache lookup, and one kernel
// map lookup the first time a cgroup the cache does not know is seen.
func (i *Identity) Of(cgroup uint64) (Info, bool) {
	if c, ok := i.cache.Lookup(cgroup); ok {
		return c, true
	}
	return i.cache.Lookup(i.ContainerCgroup(cgroup))
}

// ContainerCgroup returns the container cgroup a cgroup belongs to: the
// container's own for a cgroup made inside it, else the cgroup itself.
func (i *Identity) ContainerCgroup(cgroup uint64) uint64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	if owner, ok := i.owners[cgroup]; ok {
		return owner
	}
	owner, ok := i.owner(cgroup)
	if !ok {
		owner = cgroup
	}
	i.owners[cgroup] = owner
	return owner
}

// Forget drops what is remembered of the cgroups not in keep (those no
// longer watched), so the table follows the node's cgroups.
func (i *Identity) Forget(keep map[uint64]bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for id := range i.owners {
		if !keep[id] {
			delete(i.owners, id)
		}
	}
}
