package group

import "sync/atomic"

// table is a shard's index from key to node: open addressing with linear probing over atomic
// pointers, so that a reader finds a key without any lock or any write, while the shard's
// lock orders the writers. A write stores a node pointer (or the store's tombstone, for a
// removal) into a slot; a reader sees either the old pointer or the new one, both nodes
// complete (a node's key and value never change once published). When the slots in use
// (nodes and tombstones) pass half the table, the writer copies the live nodes into a new
// table, at most a third full, and publishes it; a reader still probing the old one finds what
// it held when it was replaced, as if its read had come first.
//
// A Go map under a read-write lock did the same job (BenchmarkGetHit): each read wrote the
// lock's reader count, a cache line that two cores then passed back and forth, and a hit
// hashed its key twice (the shard's hash, then the map's). The probe uses the store's hash.
type table[K comparable, V any] struct {
	slots []atomic.Pointer[storeNode[K, V]]
	mask  uint64
}

const minTableSlots = 16

func newTable[K comparable, V any](slots int) *table[K, V] {
	return &table[K, V]{slots: make([]atomic.Pointer[storeNode[K, V]], slots), mask: uint64(slots - 1)}
}

// find returns key's node in t, or nil. It takes no lock: any goroutine may call it.
func (t *table[K, V]) find(key K, h uint64, tomb *storeNode[K, V]) *storeNode[K, V] {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		n := t.slots[i].Load()
		if n == nil {
			return nil
		}
		if n != tomb && n.key == key {
			return n
		}
	}
}

// The writer's side, under the shard's lock.

// lookup returns key's node, or nil.
func (s *storeShard[K, V]) lookup(key K, h uint64, tomb *storeNode[K, V]) *storeNode[K, V] {
	return s.tab.Load().find(key, h, tomb)
}

// put stores n under its key, whose hash is h, and returns the node it replaced, if any.
func (s *storeShard[K, V]) put(n *storeNode[K, V], h uint64, st *store[K, V]) *storeNode[K, V] {
	t := s.tab.Load()
	free := -1
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		old := t.slots[i].Load()
		if old == nil {
			if free < 0 {
				free = int(i)
			}
			break
		}
		if old == st.tomb {
			if free < 0 {
				free = int(i)
			}
			continue
		}
		if old.key == n.key {
			t.slots[i].Store(n)
			return old
		}
	}
	if t.slots[free].Load() == nil {
		// A slot never used before: keep half the table nil, so that every probe, which
		// passes tombstones, ends at a nil soon.
		if (s.used+1)*2 > len(t.slots) {
			s.rebuild(st, s.live+1)
			return s.put(n, h, st)
		}
		s.used++
	}
	t.slots[free].Store(n)
	s.live++
	return nil
}

// delete removes key's node, if any, leaving a tombstone in its slot.
func (s *storeShard[K, V]) delete(key K, h uint64, tomb *storeNode[K, V]) {
	t := s.tab.Load()
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		n := t.slots[i].Load()
		if n == nil {
			return
		}
		if n != tomb && n.key == key {
			t.slots[i].Store(tomb)
			s.live--
			return
		}
	}
}

// rebuild publishes a new table holding the live nodes, without tombstones, at most a third
// full once it holds need nodes: at least a sixth of it then takes new keys before the next
// rebuild.
func (s *storeShard[K, V]) rebuild(st *store[K, V], need int) {
	size := minTableSlots
	for size < 3*need {
		size *= 2
	}
	old, t := s.tab.Load(), newTable[K, V](size)
	for i := range old.slots {
		n := old.slots[i].Load()
		if n == nil || n == st.tomb {
			continue
		}
		for j := st.hash(n.key) & t.mask; ; j = (j + 1) & t.mask {
			if t.slots[j].Load() == nil {
				t.slots[j].Store(n)
				break
			}
		}
	}
	s.used = s.live
	s.tab.Store(t)
}

// reset publishes an empty table.
func (s *storeShard[K, V]) reset() {
	s.tab.Store(newTable[K, V](minTableSlots))
	s.live, s.used = 0, 0
}

// each calls f for every node in the table.
func (s *storeShard[K, V]) each(tomb *storeNode[K, V], f func(*storeNode[K, V])) {
	t := s.tab.Load()
	for i := range t.slots {
		if n := t.slots[i].Load(); n != nil && n != tomb {
			f(n)
		}
	}
}
