module github.com/groupcached/groupcached

go 1.26.8

require (
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/maypok86/otter/v2 v2.4.0
)
