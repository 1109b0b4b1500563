#include "forklift_scoreboard.h"

#include <string.h>

/* Readers give up on a slot after this many torn copies: a writer changes a slot in well
 * under a microsecond, so only a stopped or hostile writer keeps one torn this long. */
#define FORKLIFT_READ_TRIES 1000

size_t forklift_board_size(uint32_t slots) {
    return sizeof(forklift_board_header) + (size_t)slots * (sizeof(forklift_worker_slot) + sizeof(forklift_slot_memory));
}

forklift_worker_slot *forklift_board_slot(forklift_board_header *board, uint32_t index) {
    return (forklift_worker_slot *)((char *)board + sizeof(forklift_board_header)) + index;
}

forklift_slot_memory *forklift_board_memory(forklift_board_header *board, uint32_t slots, uint32_t index) {
    forklift_worker_slot *end = forklift_board_slot(board, slots);
    return (forklift_slot_memory *)end + index;
}

/* The writer's half of the seqlock. The release fence after the odd store keeps the data
 * stores from moving above it; the release store of the even value keeps them below it. */
static inline void write_begin(uint32_t *seq) {
    uint32_t value = __atomic_load_n(seq, __ATOMIC_RELAXED);
    __atomic_store_n(seq, (value | 1u) == value ? value + 2u : value + 1u, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void write_end(uint32_t *seq) {
    uint32_t value = __atomic_load_n(seq, __ATOMIC_RELAXED);
    __atomic_store_n(seq, (value + 1u) & ~1u, __ATOMIC_RELEASE);
}

static inline void copy_text(char *target, uint32_t *length, size_t capacity, const char *text, size_t text_len) {
    size_t count = text_len < capacity ? text_len : capacity;
    if (count > 0 && text != NULL) memcpy(target, text, count);
    *length = (uint32_t)count;
}

void forklift_slot_prepare(forklift_worker_slot *slot, int32_t pid, uint64_t now) {
    write_begin(&slot->seq);
    memset((char *)slot + sizeof(slot->seq), 0, sizeof(*slot) - sizeof(slot->seq)); /* waiting too: nobody runs here yet */
    slot->state = FORKLIFT_WORKER_STARTING;
    slot->pid = pid;
    slot->spawned_ns = now;
    slot->state_since_ns = now;
    slot->heartbeat_ns = now;
    write_end(&slot->seq);
}

void forklift_slot_release(forklift_worker_slot *slot) {
    write_begin(&slot->seq);
    slot->state = FORKLIFT_WORKER_FREE;
    slot->pid = 0;
    write_end(&slot->seq);
    forklift_slot_set_waiting(slot, 0);
}

void forklift_slot_set_waiting(forklift_worker_slot *slot, int32_t waiting) {
    __atomic_store_n(&slot->waiting, waiting, __ATOMIC_SEQ_CST);
}

int32_t forklift_slot_waiting(const forklift_worker_slot *slot) {
    return __atomic_load_n(&slot->waiting, __ATOMIC_SEQ_CST);
}

void forklift_slot_set_pid(forklift_worker_slot *slot, int32_t pid, uint64_t now) {
    write_begin(&slot->seq);
    slot->pid = pid;
    slot->heartbeat_ns = now;
    write_end(&slot->seq);
}

void forklift_slot_set_state(forklift_worker_slot *slot, uint32_t state, uint64_t now) {
    write_begin(&slot->seq);
    slot->state = state;
    slot->state_since_ns = now;
    slot->heartbeat_ns = now;
    write_end(&slot->seq);
}

void forklift_slot_begin_request(forklift_worker_slot *slot, uint64_t now,
                                 const char *method, size_t method_len,
                                 const char *uri, size_t uri_len,
                                 const char *plugin, size_t plugin_len,
                                 uint64_t content_length) {
    write_begin(&slot->seq);
    slot->state = FORKLIFT_WORKER_RUNNING;
    slot->state_since_ns = now;
    slot->heartbeat_ns = now;
    slot->content_length = content_length;
    copy_text(slot->method, &slot->method_len, FORKLIFT_METHOD_MAX, method, method_len);
    copy_text(slot->uri, &slot->uri_len, FORKLIFT_URI_MAX, uri, uri_len);
    copy_text(slot->plugin, &slot->plugin_len, FORKLIFT_PLUGIN_MAX, plugin, plugin_len);
    write_end(&slot->seq);
}

void forklift_slot_end_request(forklift_worker_slot *slot, uint64_t now, uint32_t status,
                               uint64_t cpu_ns, uint64_t max_rss_kb, uint32_t next_state) {
    write_begin(&slot->seq);
    slot->state = next_state;
    slot->state_since_ns = now;
    slot->heartbeat_ns = now;
    slot->requests += 1;
    slot->last_status = status;
    slot->last_duration_ns = now > slot->request_started_ns ? now - slot->request_started_ns : 0;
    slot->last_cpu_ns = cpu_ns;
    slot->max_rss_kb = max_rss_kb;
    write_end(&slot->seq);
}

void forklift_memory_store(forklift_slot_memory *sample, int32_t pid, uint64_t now,
                           uint64_t pss_kb, uint64_t private_dirty_kb, uint64_t shared_kb) {
    write_begin(&sample->seq);
    sample->pid = pid;
    sample->sampled_ns = now;
    sample->pss_kb = pss_kb;
    sample->private_dirty_kb = private_dirty_kb;
    sample->shared_kb = shared_kb;
    write_end(&sample->seq);
}

int forklift_board_claim_yield(forklift_board_header *board, uint64_t now_ns, uint64_t max_age_ns) {
    uint64_t claimed = __atomic_load_n(&board->yield_claim_ns, __ATOMIC_SEQ_CST);
    if (claimed != 0 && now_ns >= claimed && now_ns - claimed < max_age_ns) return 0;
    return __atomic_compare_exchange_n(&board->yield_claim_ns, &claimed, now_ns, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

void forklift_board_release_yield(forklift_board_header *board) {
    __atomic_store_n(&board->yield_claim_ns, 0, __ATOMIC_SEQ_CST);
}

void forklift_header_write_begin(forklift_board_header *board) { write_begin(&board->host_seq); }
void forklift_header_write_end(forklift_board_header *board) { write_end(&board->host_seq); }

/* The reader's half: copy word by word with relaxed atomic loads (a racing writer makes the
 * copy torn, never undefined), then check that the sequence did not move. */
static int seq_read(const uint32_t *seq, const void *shared, void *copy, size_t size) {
    for (int attempt = 0; attempt < FORKLIFT_READ_TRIES; attempt++) {
        uint32_t before = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
        if (before & 1u) continue;
        const uint64_t *from = (const uint64_t *)shared;
        uint64_t *to = (uint64_t *)copy;
        for (size_t i = 0; i < size / sizeof(uint64_t); i++) to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(seq, __ATOMIC_RELAXED) == before) return 1;
    }
    return 0;
}

int forklift_slot_read(const forklift_worker_slot *shared, forklift_worker_slot *copy) {
    return seq_read(&shared->seq, shared, copy, sizeof(*copy));
}

int forklift_memory_read(const forklift_slot_memory *shared, forklift_slot_memory *copy) {
    return seq_read(&shared->seq, shared, copy, sizeof(*copy));
}

int forklift_header_read(const forklift_board_header *shared, forklift_board_header *copy) {
    return seq_read(&shared->host_seq, shared, copy, sizeof(*copy));
}

int64_t forklift_atomic_load64(const int64_t *address) { return __atomic_load_n(address, __ATOMIC_SEQ_CST); }
void forklift_atomic_store64(int64_t *address, int64_t value) { __atomic_store_n(address, value, __ATOMIC_SEQ_CST); }
int64_t forklift_atomic_add64(int64_t *address, int64_t delta) { return __atomic_add_fetch(address, delta, __ATOMIC_SEQ_CST); }

void forklift_atomic_max64(int64_t *address, int64_t value) {
    int64_t current = __atomic_load_n(address, __ATOMIC_RELAXED);
    while (current < value && !__atomic_compare_exchange_n(address, &current, value, 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
}
