/* TFLM backend (Arduino / PlatformIO only): implements benchcore's backend.h with the TFLite
 * Micro interpreter from the TFLM Arduino library pinned in platformio.ini (lib_deps).
 *
 * A sketch includes this header in builds that use the TFLM backend. Besides declaring the
 * arena size, the include is what tells PlatformIO's library dependency finder to build this
 * library (the sketch itself only calls the functions declared in backend.h). */
#ifndef NANO_TFLM_BACKEND_TFLM_H_
#define NANO_TFLM_BACKEND_TFLM_H_

#include "backend.h"

/* Error codes of backend_init() (all negative; 0 is success). */
#define BACKEND_TFLM_ERR_SCHEMA (-1)   /* flatbuffer schema version != the library's */
#define BACKEND_TFLM_ERR_RESOLVER (-2) /* an op could not be registered */
#define BACKEND_TFLM_ERR_ALLOCATE (-3) /* AllocateTensors failed: arena too small? */
#define BACKEND_TFLM_ERR_TENSORS (-4)  /* I/O tensors disagree with model_meta.h */

#endif /* NANO_TFLM_BACKEND_TFLM_H_ */
