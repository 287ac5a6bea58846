/*
 * fuzz_region_header.c - libFuzzer target for shmsock_region_check_header: a header copied out
 * of a peer's memfd, and the file's real size. Invariant: an accepted header describes blocks
 * that all lie inside the file, with a sane block size and the rings where this version
 * puts them.
 *
 * Input: the header bytes (padded with zeros), then 8 bytes of file size (or the header's
 * own region_size if absent).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "impl/wire.h"
#include "impl/wire_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct shmsock_region_header header;
    memset(&header, 0, sizeof(header));
    size_t take = size < sizeof(header) ? size : sizeof(header);
    memcpy(&header, data, take);
    uint64_t file_size = header.region_size;
    if (size >= sizeof(header) + sizeof(uint64_t))
        memcpy(&file_size, data + sizeof(header), sizeof(file_size));
    else if (size >= 8 && size < sizeof(header))
        memcpy(&file_size, data + size - 8, sizeof(file_size)); /* short inputs: size at end */

    struct shmsock_geometry g;
    memset(&g, 0xAB, sizeof(g));
    if (shmsock_region_check_header(&header, file_size, &g) != 0)
        return 0;
    if (g.block_size < SHMSOCK_MIN_BLOCK_SIZE || g.block_size > SHMSOCK_MAX_BLOCK_SIZE ||
        (g.block_size & (g.block_size - 1)) != 0 || g.block_count == 0 ||
        g.block_count > SHMSOCK_MAX_BLOCK_COUNT || g.header_size < SHMSOCK_REGION_HEADER_SIZE ||
        g.region_size != file_size ||
        (uint64_t)g.header_size + (uint64_t)g.block_size * g.block_count > file_size)
        abort();
    return 0;
}
