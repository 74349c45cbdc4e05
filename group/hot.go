package group

// PurgeHot drops every copy of other nodes' keys (the hot cache) and keeps the fetches under
// way from storing theirs, while the keys this node owns stay. The peers package calls it
// when a member leaves or dies, so that nothing a departed member served outlives it here:
// the hot cache does not record which member each copy came from, and departures are rare
// enough that refetching the popular keys (one fetch in HotCacheRate keeps a copy) costs
// less than tagging every entry.
func (g *Group) PurgeHot() {
	g.flights.invalidateRemote()
	g.hot.purge()
}

// invalidateRemote marks every fetch from an owner stale and forgets it, as invalidate does
// for Remove: a later Get fetches afresh and the running fetches cache nothing.
func (f *flights) invalidateRemote() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, c := range f.m {
		if k.remote {
			c.stale = true
			delete(f.m, k)
		}
	}
}
