package peers

import (
	"slices"

	"github.com/cespare/xxhash/v2"
)

// ringBucketBits sets the number of buckets the key space is cut into: 2^18. Each member's
// share is a count of buckets, so its spread around 1/N is about sqrt(N/2^18): 0.6% at 10
// members, which keeps max/mean load near 1.01. The table costs 2 bytes a bucket (512 KiB),
// and a rebuild scores every bucket against every member (13M cheap mixes at 50 members).
const ringBucketBits = 18

// Ring maps keys to members. It is rendezvous (highest-random-weight) hashing computed once
// per bucket instead of once per key: the key space is cut into 2^18 buckets, each bucket goes
// to the member with the highest score mix(hash(member) ^ bucket), and a lookup is one xxhash of
// the key plus one table read, whatever the number of members.
//
// From rendezvous hashing it keeps the two properties a cache cluster needs: every node that
// sees the same member names builds the same table (no map order, no per-process seed), and
// when a member joins, the only buckets that move are the ones it wins, so the keys moved are
// its share, close to the ideal 1/(N+1); when one leaves, only its buckets move. From a table
// it keeps a lookup cost independent of N, unlike plain rendezvous (N hashes per key) or a
// virtual-node ring (a binary search over N*V points, with V in the thousands to reach the
// same balance).
//
// A Ring is immutable and safe for concurrent use.
type Ring struct {
	names  []string // sorted, unique
	owners []uint16 // bucket -> index into names
	counts []int    // buckets owned, per member
}

// maxRingMembers is what a uint16 bucket entry can name.
const maxRingMembers = 1 << 16

// NewRing builds the ring of the given member names (order and duplicates do not matter).
// It panics on more than 65536 members, a size memberlist does not reach on one LAN.
func NewRing(names []string) *Ring {
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	if len(sorted) > maxRingMembers {
		panic("peers: more than 65536 ring members")
	}
	r := &Ring{names: sorted, counts: make([]int, len(sorted))}
	if len(sorted) == 0 {
		return r
	}
	r.owners = make([]uint16, 1<<ringBucketBits)
	seeds := make([]uint64, len(sorted))
	for i, name := range sorted {
		seeds[i] = xxhash.Sum64String(name)
	}
	for b := range r.owners {
		// Spreading the bucket number over 64 bits before the xor keeps the scores of one
		// bucket independent across members even when their seeds differ in few bits.
		spread := uint64(b) * 0x9e3779b97f4a7c15
		best, bestScore := 0, mix64(seeds[0]^spread)
		for i := 1; i < len(seeds); i++ {
			// Ties go to the lower index, that is the smaller name: deterministic everywhere.
			if s := mix64(seeds[i] ^ spread); s > bestScore {
				best, bestScore = i, s
			}
		}
		r.owners[b] = uint16(best)
		r.counts[best]++
	}
	return r
}

// mix64 is the murmur3 64-bit finalizer: a bijection in which every input bit flips every
// output bit with probability close to one half.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// Len returns the number of members.
func (r *Ring) Len() int { return len(r.names) }

// Names returns the members, sorted. The caller must not modify the slice.
func (r *Ring) Names() []string { return r.names }

// Owner returns the index in Names of the member that owns key, or -1 for an empty ring.
func (r *Ring) Owner(key string) int {
	if len(r.names) == 0 {
		return -1
	}
	return int(r.owners[xxhash.Sum64String(key)>>(64-ringBucketBits)])
}

// OwnerName returns the name of the member that owns key, or "" for an empty ring.
func (r *Ring) OwnerName(key string) string {
	if i := r.Owner(key); i >= 0 {
		return r.names[i]
	}
	return ""
}

// Share returns the fraction of the key space that the named member owns (0 if it is not a
// member).
func (r *Ring) Share(name string) float64 {
	i, ok := slices.BinarySearch(r.names, name)
	if !ok {
		return 0
	}
	return float64(r.counts[i]) / float64(len(r.owners))
}

// Equal reports whether two rings have the same members, and so the same owner for every key.
func (r *Ring) Equal(o *Ring) bool { return slices.Equal(r.names, o.names) }
