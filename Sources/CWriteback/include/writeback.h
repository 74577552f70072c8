#ifndef MODELREG_WRITEBACK_H
#define MODELREG_WRITEBACK_H

#include <stdint.h>

/// Asks the kernel to start writing a file's dirty pages in [offset, offset + count) to the disk and returns at
/// once (Linux's sync_file_range with SYNC_FILE_RANGE_WRITE); 0, or -1 with errno. Elsewhere it does nothing.
int modelreg_start_writeback(int descriptor, int64_t offset, int64_t count);

#endif
