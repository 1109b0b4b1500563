/*
 * forklift_scoreboard.h -- the shared memory a master, a host and its workers see.
 *
 * Two kinds of mapping, both created by the master before it forks a host:
 *
 * - a generation board per host (one pool, one generation): a header, one slot per possible
 *   worker, and one memory sample per slot;
 * - a pool's counters, shared by every generation of that pool for as long as the pool exists.
 *
 * A host gets only its own pool's mappings (the master unmaps the others in the child), so a
 * pool's workers can write nothing of another pool. Everything a worker can write is read
 * defensively: no pointers, every length clamped, every slot copied under its sequence
 * counter and checked before use (php-fpm's CVE-2021-21703 was a root master following a
 * pointer that a worker could overwrite).
 *
 * Each slot has one writer at a time: the host before the fork and after the reap, the worker
 * in between. Its sequence counter is odd while the writer changes it, so a reader copies it
 * until it gets the same even value before and after (a seqlock).
 */
#ifndef FORKLIFT_SCOREBOARD_H
#define FORKLIFT_SCOREBOARD_H

#include <stddef.h>
#include <stdint.h>

#define FORKLIFT_BOARD_MAGIC 0x4b4c4642u /* "BFLK" */
#define FORKLIFT_BOARD_VERSION 1u

#define FORKLIFT_METHOD_MAX 16
#define FORKLIFT_PLUGIN_MAX 64
#define FORKLIFT_URI_MAX 256

/* A worker's state. The numbers are part of the layout. */
enum {
    FORKLIFT_WORKER_FREE = 0,      /* no process in this slot */
    FORKLIFT_WORKER_STARTING = 1,  /* forked; worker init hooks running */
    FORKLIFT_WORKER_IDLE = 2,      /* waiting for a connection */
    FORKLIFT_WORKER_READING = 3,   /* accepting and reading the request's records */
    FORKLIFT_WORKER_RUNNING = 4,   /* in the plugin's handler */
    FORKLIFT_WORKER_FINISHING = 5, /* handler done; flushing and closing the connection */
    FORKLIFT_WORKER_EXITING = 6,   /* leaving: worker exit hooks */
    FORKLIFT_WORKER_KEPT = 7,      /* between requests on a connection the client keeps open */
    FORKLIFT_WORKER_STATE_COUNT = 8
};

/* Every struct is a whole number of 64-byte cache lines, padded by hand (Swift does not import
 * over-aligned C structs), so that writers of different lines never share one. */
typedef struct {
    uint32_t seq;
    uint32_t state;
    int32_t pid;
    uint32_t last_status;        /* HTTP status of the last request */
    uint64_t spawned_ns;         /* CLOCK_MONOTONIC, as every time here */
    uint64_t state_since_ns;     /* when it entered its state */
    uint64_t heartbeat_ns;       /* its last sign of life */
    uint64_t requests;           /* served by this process */
    uint64_t request_started_ns; /* the current (or last) request */
    uint64_t content_length;
    uint64_t last_duration_ns;
    uint64_t last_cpu_ns;        /* user + system time of the last request */
    uint64_t max_rss_kb;         /* the process's peak resident set */
    uint32_t method_len;
    uint32_t plugin_len;
    uint32_t uri_len;
    /* Outside the seqlock, an atomic of its own: 1 from "about to wait for a connection" to
     * "accept() returned". The host clears it when it reaps the worker, so a worker killed
     * while waiting never leaves it set (a board-wide counter would leak). */
    int32_t waiting;
    char method[FORKLIFT_METHOD_MAX];
    char plugin[FORKLIFT_PLUGIN_MAX];
    char uri[FORKLIFT_URI_MAX];
    uint8_t pad[8];
} forklift_worker_slot;

/* Written by the host: what it measured of the worker in the same slot. */
typedef struct {
    uint32_t seq;
    int32_t pid;
    uint64_t sampled_ns;
    uint64_t pss_kb;
    uint64_t private_dirty_kb;
    uint64_t shared_kb;
    uint8_t pad[24];
} forklift_slot_memory;

/* The host's own state, for the status page and the master. */
enum {
    FORKLIFT_POOL_NORMAL = 0,
    FORKLIFT_POOL_BACKING_OFF = 1, /* workers die right after starting: growing delays */
    FORKLIFT_POOL_STOPPING = 2
};

typedef struct {
    uint32_t magic;
    uint32_t version;
    uint32_t slot_count;
    uint32_t slot_size;
    /* Written by the master. */
    int32_t retired;
    int32_t live;
    int32_t target_workers;      /* scaling: 0 = as configured, else this many (see PoolCore) */
    uint32_t target_seq;         /* bumped with every new target */
    uint8_t pad0[32];
    /* Written by workers: a worker on a kept connection about to give it up for a new client
     * claims this first (a monotonic time), so that one of them gives way, not all. */
    uint64_t yield_claim_ns;
    uint8_t pad1[56];
    /* Written by the host, under host_seq. */
    uint32_t host_seq;
    int32_t host_pid;
    uint32_t pool_state;         /* condition (bits 0-7), at the ceiling (bit 8), standbys waiting (bits 16-31) */
    uint32_t consecutive_failures;
    uint64_t backoff_until_ns;
    uint64_t all_busy_since_ns;  /* 0: not every worker is busy */
    int32_t effective_target;    /* how many workers the host keeps now (static), or its ceiling */
    uint32_t high_water;         /* slots [0, high_water) have been used */
    uint64_t started_ns;
    uint64_t host_pss_kb;        /* the host's own memory, at its last sample */
    uint64_t host_private_dirty_kb;
} forklift_board_header;

typedef struct {
    uint32_t magic;
    uint32_t version;
    int64_t started_realtime_s; /* master: when the pool first started */
    int64_t started_ns;
    uint8_t pad0[40];
    /* Written by workers. Signed, so that every counter takes the same atomics. */
    int64_t accepted;
    int64_t active;
    int64_t max_active;
    uint8_t pad1[40];
    /* Written by the live host. */
    int64_t max_children_reached;
    int64_t slow_requests;
    int64_t listen_queue;
    int64_t max_listen_queue;
    int64_t listen_queue_len;
    uint8_t pad2[24];
} forklift_pool_counters;

_Static_assert(sizeof(forklift_worker_slot) % 64 == 0, "a slot is whole cache lines");
_Static_assert(sizeof(forklift_slot_memory) == 64, "a memory sample is one cache line");
_Static_assert(sizeof(forklift_board_header) == 192, "the header is three cache lines");
_Static_assert(sizeof(forklift_pool_counters) == 192, "the counters are three cache lines");

/* The bytes a board with `slots` slots takes (header, slots, memory samples). Every offset is
 * computed from the slot count the master mapped, never from anything in the board. */
size_t forklift_board_size(uint32_t slots);
forklift_worker_slot *forklift_board_slot(forklift_board_header *board, uint32_t index);
forklift_slot_memory *forklift_board_memory(forklift_board_header *board, uint32_t slots, uint32_t index);

/* Writers ------------------------------------------------------------------------------ */

/* Host, before the fork (the slot is free, nobody writes it). */
void forklift_slot_prepare(forklift_worker_slot *slot, int32_t pid, uint64_t now);
/* Host, after the reap: the slot is free again. */
void forklift_slot_release(forklift_worker_slot *slot);
/* Worker. */
void forklift_slot_set_pid(forklift_worker_slot *slot, int32_t pid, uint64_t now);
void forklift_slot_set_state(forklift_worker_slot *slot, uint32_t state, uint64_t now);
void forklift_slot_begin_request(forklift_worker_slot *slot, uint64_t now,
                                 const char *method, size_t method_len,
                                 const char *uri, size_t uri_len,
                                 const char *plugin, size_t plugin_len,
                                 uint64_t content_length);
/* The request is done; the worker is idle again, or kept (`next_state`). */
void forklift_slot_end_request(forklift_worker_slot *slot, uint64_t now, uint32_t status,
                               uint64_t cpu_ns, uint64_t max_rss_kb, uint32_t next_state);
/* The waiting flag (sequentially consistent): the worker sets and clears it, the host clears
 * it at the reap, the master reads it. */
void forklift_slot_set_waiting(forklift_worker_slot *slot, int32_t waiting);
int32_t forklift_slot_waiting(const forklift_worker_slot *slot);
void forklift_memory_store(forklift_slot_memory *sample, int32_t pid, uint64_t now,
                           uint64_t pss_kb, uint64_t private_dirty_kb, uint64_t shared_kb);

/* Host state: begin, change the fields, end. */
void forklift_header_write_begin(forklift_board_header *board);
void forklift_header_write_end(forklift_board_header *board);

/* Claims the right to give a kept connection up for a new client, unless another worker
 * claimed it less than `max_age_ns` ago. 1 if claimed. */
int forklift_board_claim_yield(forklift_board_header *board, uint64_t now_ns, uint64_t max_age_ns);
void forklift_board_release_yield(forklift_board_header *board);

/* Readers ------------------------------------------------------------------------------ */

/* Copy a slot consistently; 0 if it stayed torn (a writer that stopped half-way, or one
 * that scribbles) after a bounded number of tries. */
int forklift_slot_read(const forklift_worker_slot *shared, forklift_worker_slot *copy);
int forklift_memory_read(const forklift_slot_memory *shared, forklift_slot_memory *copy);
int forklift_header_read(const forklift_board_header *shared, forklift_board_header *copy);

/* Counters: sequentially consistent 64-bit atomics. */
int64_t forklift_atomic_load64(const int64_t *address);
void forklift_atomic_store64(int64_t *address, int64_t value);
int64_t forklift_atomic_add64(int64_t *address, int64_t delta); /* returns the new value */
/* Raise *address to value if it is lower. */
void forklift_atomic_max64(int64_t *address, int64_t value);

#endif
