/* Host runner for generated AOT code (`python -m trainer.aot check`, the AOT tests,
 * tools/aot_fuzz.py): reads N input tensors (MODEL_AOT_INPUT_BYTES each, int8) from argv[1],
 * runs model_aot_invoke on each, writes the N output tensors to argv[2]. One process per model
 * (not per image) keeps the sanitizer build fast. Exit 0 on success. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "model_aot.h"

int main(int argc, char** argv) {
    static int8_t in[MODEL_AOT_INPUT_BYTES];
    static int8_t out[MODEL_AOT_OUTPUT_BYTES];
    if (argc != 3) {
        fprintf(stderr, "usage: %s inputs.bin outputs.bin\n", argv[0]);
        return 2;
    }
    FILE* fi = fopen(argv[1], "rb");
    FILE* fo = fopen(argv[2], "wb");
    if (fi == NULL || fo == NULL) {
        fprintf(stderr, "cannot open %s or %s\n", argv[1], argv[2]);
        return 2;
    }
    long n = 0;
    while (fread(in, 1, sizeof in, fi) == sizeof in) {
        const int rc = model_aot_invoke(in, out);
        if (rc != 0) {
            fprintf(stderr, "model_aot_invoke failed on record %ld: %d\n", n, rc);
            return 1;
        }
        if (fwrite(out, 1, sizeof out, fo) != sizeof out) {
            fprintf(stderr, "write failed\n");
            return 1;
        }
        ++n;
    }
    fclose(fi);
    fclose(fo);
    return 0;
}
