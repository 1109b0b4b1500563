#include "forklift_sys.h"

int32_t forklift_atomic_load(const int32_t *address) { return __atomic_load_n(address, __ATOMIC_SEQ_CST); }
void forklift_atomic_store(int32_t *address, int32_t value) { __atomic_store_n(address, value, __ATOMIC_SEQ_CST); }
int32_t forklift_atomic_add(int32_t *address, int32_t delta) { return __atomic_add_fetch(address, delta, __ATOMIC_SEQ_CST); }
