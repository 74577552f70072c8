// sync_file_range is a GNU extension: Swift's Glibc module does not declare it.
#define _GNU_SOURCE
#include "writeback.h"

#include <fcntl.h>

int modelreg_start_writeback(int descriptor, int64_t offset, int64_t count) {
#ifdef __linux__
    return sync_file_range(descriptor, offset, count, SYNC_FILE_RANGE_WRITE);
#else
    (void)descriptor;
    (void)offset;
    (void)count;
    return 0;
#endif
}
