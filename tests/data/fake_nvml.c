/* A fake libnvidia-ml.so.1 for tests/test_fingerprint_nvml.py, built with one of:
 *   -DMODE_SEGV   nvmlInit segfaults (a driver library mismatched with the kernel module)
 *   -DMODE_HANG   nvmlInit never returns
 *   -DMODE_HUGE   nvmlInit works, nvmlDeviceGetCount reports 2147483647 devices
 *   -DMODE_GOOD   one "Fake GPU 9000" with 24 GiB, compute capability 9.0
 * Only the functions pynvml calls for driftboard's fields are exported; a missing
 * one makes pynvml raise NVMLError_FunctionNotFound, as with an old driver.
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;

static int init(void) {
#if defined(MODE_SEGV)
    volatile int *nowhere = 0;
    *nowhere = 1;
#elif defined(MODE_HANG)
    for (;;) sleep(1000);
#endif
    return 0;
}

int nvmlInitWithFlags(unsigned int flags) { (void)flags; return init(); }
int nvmlInit_v2(void) { return init(); }
int nvmlInit(void) { return init(); }
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int result) { (void)result; return "fake NVML error"; }

int nvmlDeviceGetCount_v2(unsigned int *count) {
#if defined(MODE_HUGE)
    *count = 2147483647u;
#else
    *count = 1;
#endif
    return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **handle) {
    *handle = (void *)(uintptr_t)(index + 1);
    return 0;
}

#if defined(MODE_GOOD)
static int copy(char *out, unsigned int length, const char *text) {
    if (strlen(text) + 1 > length) return 7; /* NVML_ERROR_INSUFFICIENT_SIZE */
    strcpy(out, text);
    return 0;
}

int nvmlSystemGetNVMLVersion(char *out, unsigned int n) { return copy(out, n, "12.999.01"); }
int nvmlSystemGetDriverVersion(char *out, unsigned int n) { return copy(out, n, "999.01"); }
int nvmlSystemGetCudaDriverVersion(int *version) { *version = 12080; return 0; }
int nvmlDeviceGetName(void *h, char *out, unsigned int n) { (void)h; return copy(out, n, "Fake GPU 9000"); }
int nvmlDeviceGetUUID(void *h, char *out, unsigned int n) {
    (void)h;
    return copy(out, n, "GPU-00000000-1111-2222-3333-444444444444");
}
int nvmlDeviceGetCudaComputeCapability(void *h, int *major, int *minor) { (void)h; *major = 9; *minor = 0; return 0; }
int nvmlDeviceGetMemoryInfo(void *h, nvmlMemory_t *memory) {
    (void)h;
    memory->total = 24ull << 30;
    memory->free = memory->total;
    memory->used = 0;
    return 0;
}
int nvmlDeviceGetMigMode(void *h, unsigned int *current, unsigned int *pending) { (void)h; *current = *pending = 0; return 0; }
int nvmlDeviceGetEccMode(void *h, unsigned int *current, unsigned int *pending) { (void)h; *current = *pending = 1; return 0; }
#endif
