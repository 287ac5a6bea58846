/*
 * replay_main.c - a main() for the fuzz targets without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on every file named on the command line or found in the
 * directories named there. Bazel uses it to replay fuzz/corpus/<target>/ as a regression test
 * (also under --config=asan/ubsan); tools/fuzz.sh builds the real fuzzers.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    static uint8_t buffer[1 << 20];
    size_t n = fread(buffer, 1, sizeof(buffer), f);
    fclose(f);
    uint8_t *copy = malloc(n ? n : 1); /* exactly sized: overruns are seen by ASan */
    if (copy == NULL)
        return 1;
    memcpy(copy, buffer, n);
    LLVMFuzzerTestOneInput(copy, n);
    free(copy);
    return 0;
}

int main(int argc, char **argv)
{
    int failures = 0, inputs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *dir = opendir(argv[i]);
            struct dirent *entry;
            while (dir != NULL && (entry = readdir(dir)) != NULL) {
                if (entry->d_name[0] == '.')
                    continue;
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s", argv[i], entry->d_name);
                failures += run_file(path);
                inputs++;
            }
            if (dir != NULL)
                closedir(dir);
        } else {
            failures += run_file(argv[i]);
            inputs++;
        }
    }
    printf("replayed %d inputs\n", inputs);
    return failures != 0 || inputs == 0;
}
