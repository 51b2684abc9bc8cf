/* Backend API: one inference engine behind six calls, so the core does not care whether the
 * model runs through the TFLM interpreter (firmware/lib/backend_tflm/, Arduino only) or through
 * ahead-of-time generated C (firmware/lib/backend_aot/backend_aot.c, every port).
 * Contract: docs/DEVELOPING.md, "Backend API". */
#ifndef NANO_TFLM_BACKEND_H_
#define NANO_TFLM_BACKEND_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int backend_init(void);               /* 0 on success; called once before anything else */
const char* backend_init_error(void); /* after a failed init: what failed, one line; else "" */
int8_t* backend_input(void);          /* input tensor, backend_input_bytes() long */
size_t backend_input_bytes(void);
int backend_invoke(void);           /* 0 on success */
const int8_t* backend_output(void); /* output tensor, backend_output_bytes() long */
size_t backend_output_bytes(void);
const char* backend_name(void);        /* "aot" or "tflm" */
size_t backend_arena_bytes(void);      /* bytes reserved for tensors */
size_t backend_arena_used_bytes(void); /* bytes of the arena the model really uses */

#ifdef __cplusplus
}
#endif

#endif /* NANO_TFLM_BACKEND_H_ */
