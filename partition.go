package mevents

import "hash/fnv"

// Partitions is the number of partitions of every event type.
const Partitions = 12

// Partition returns the partition (0…Partitions-1) of a partition key:
// FNV-1a 32-bit of the key's UTF-8 bytes, modulo Partitions. It equals
// nats-server's partition(12, …) subject mapping function.
func Partition(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % Partitions)
}
