/*
 * robustlock_segment.h: the header of a robustlock segment, version 1, for
 * C and C++ peers of package github.com/futexlab/robustlock/segment.
 *
 * This is the one C definition of the layout (segment/doc.go documents the
 * fields; the package's tests compile their C peers against this file).
 * A segment file is this 128-byte header, then mutex_count glibc
 * pthread_mutex_t (robust, process-shared, normal type) at mutex_offset +
 * i * mutex_stride (mutex 0 is the segment's own lock), then data_size
 * bytes of data at data_offset, which end the file. Integers are in the
 * creating machine's byte order.
 *
 * A peer opens a published segment with shm_open("/NAME", O_RDWR, 0) (or
 * open(2) of its path), fstats it, maps st_size bytes MAP_SHARED, checks
 * it with robustlock_segment_check, then locks robustlock_segment_mutex(h,
 * i) with pthread_mutex_lock, handling EOWNERDEAD with
 * pthread_mutex_consistent. A C creator must build the complete file
 * under a name nobody opens and link(2) it into place, as Open does.
 */
#ifndef ROBUSTLOCK_SEGMENT_H
#define ROBUSTLOCK_SEGMENT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
#define ROBUSTLOCK_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define ROBUSTLOCK_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

#define ROBUSTLOCK_SEGMENT_MAGIC      "RLOCKSEG" /* 8 bytes, no NUL */
#define ROBUSTLOCK_SEGMENT_VERSION    1
#define ROBUSTLOCK_SEGMENT_BYTE_ORDER 0x01020304u

struct robustlock_segment {          /* version 1, 128 bytes */
	char     magic[8];               /* ROBUSTLOCK_SEGMENT_MAGIC, written last by the creator */
	uint32_t version;                /* ROBUSTLOCK_SEGMENT_VERSION */
	uint16_t word_size;              /* sizeof(void *): 8 */
	uint16_t mutex_size;             /* sizeof(pthread_mutex_t): 40 on x86-64, 48 on arm64 */
	uint32_t byte_order;             /* ROBUSTLOCK_SEGMENT_BYTE_ORDER, written natively */
	uint32_t header_size;            /* 128 */
	uint32_t mutex_count;            /* mutexes, the segment lock included */
	uint32_t mutex_stride;           /* bytes between mutexes; >= mutex_size, multiple of 8 */
	uint64_t mutex_offset;           /* offset of mutex 0; >= 128, multiple of 8 */
	uint64_t data_offset;            /* offset of the data; multiple of 8, after the last mutex */
	uint64_t data_size;              /* bytes of data */
	uint64_t total_size;             /* data_offset + data_size == size of the file */
	int32_t  creator_pid;            /* the creator's pid in its PID namespace; > 0 */
	uint32_t flags;                  /* 0 */
	int64_t  created_ns;             /* creation time, ns since 1970 (CLOCK_REALTIME) */
	uint64_t pidns_ino;              /* inode of the creator's /proc/self/ns/pid; 0 if unknown */
	uint8_t  reserved[40];           /* 0 */
};

/* The documented offsets: a header that drifts from them does not compile. */
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, version) == 8, "version");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, word_size) == 12, "word_size");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, mutex_size) == 14, "mutex_size");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, byte_order) == 16, "byte_order");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, header_size) == 20, "header_size");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, mutex_count) == 24, "mutex_count");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, mutex_stride) == 28, "mutex_stride");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, mutex_offset) == 32, "mutex_offset");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, data_offset) == 40, "data_offset");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, data_size) == 48, "data_size");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, total_size) == 56, "total_size");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, creator_pid) == 64, "creator_pid");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, flags) == 68, "flags");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, created_ns) == 72, "created_ns");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, pidns_ino) == 80, "pidns_ino");
ROBUSTLOCK_STATIC_ASSERT(offsetof(struct robustlock_segment, reserved) == 88, "reserved");
ROBUSTLOCK_STATIC_ASSERT(sizeof(struct robustlock_segment) == 128, "sizeof");

/*
 * robustlock_segment_check returns NULL if the size bytes mapped at h are
 * a segment this program can use, or the name of the first check that
 * failed: what Open checks of a header, with this program's ABI.
 */
static inline const char *robustlock_segment_check(const struct robustlock_segment *h, uint64_t size) {
	if (size < sizeof *h) return "short file";
	if (memcmp(h->magic, ROBUSTLOCK_SEGMENT_MAGIC, 8)) return "magic";
	if (h->version != ROBUSTLOCK_SEGMENT_VERSION) return "version";
	if (h->word_size != sizeof(void *)) return "word_size";
	if (h->mutex_size != sizeof(pthread_mutex_t)) return "mutex_size";
	if (h->byte_order != ROBUSTLOCK_SEGMENT_BYTE_ORDER) return "byte_order";
	if (h->header_size != sizeof *h) return "header_size";
	if (h->total_size != size) return "total_size";
	if (h->mutex_count < 1) return "mutex_count";
	if (h->mutex_stride < sizeof(pthread_mutex_t) || h->mutex_stride % 8) return "mutex_stride";
	if (h->mutex_offset < sizeof *h || h->mutex_offset % 8 || h->mutex_offset > size) return "mutex_offset";
	if (h->data_offset > size || h->data_offset % 8) return "data_offset";
	/* Both offsets are within size now, so nothing below overflows. */
	if (h->mutex_offset > h->data_offset || (h->data_offset - h->mutex_offset) / h->mutex_stride < h->mutex_count)
		return "mutexes overlap the data";
	if (h->data_offset + h->data_size != h->total_size) return "data_size";
	if (h->creator_pid <= 0) return "creator_pid";
	if (h->flags != 0) return "flags";
	for (size_t i = 0; i < sizeof h->reserved; i++)
		if (h->reserved[i]) return "reserved";
	return NULL;
}

/* robustlock_segment_mutex returns mutex i (0 is the segment's lock). */
static inline pthread_mutex_t *robustlock_segment_mutex(struct robustlock_segment *h, uint32_t i) {
	return (pthread_mutex_t *)((char *)h + h->mutex_offset + (uint64_t)i * h->mutex_stride);
}

/* robustlock_segment_data returns the segment's data. */
static inline void *robustlock_segment_data(struct robustlock_segment *h) {
	return (void *)((char *)h + h->data_offset);
}

#endif
