// TEST-ONLY stand-in (tests/tflm_stub/README.md) for
// tensorflow/lite/micro/micro_mutable_op_resolver.h: default-constructible template, one
// TfLiteStatus Add*() per builtin (names as in the pinned header). Like the real resolver it
// refuses an op twice and more ops than tOpCount.
#pragma once
#include <string.h>

#include "tensorflow/lite/c/common.h"

struct FakeTflm;
extern FakeTflm g_fake;
TfLiteStatus fake_register(const char* name, unsigned int capacity, unsigned int* count);

namespace tflite {

struct TfLiteRegistration {
  int unused;
};
TfLiteRegistration Register_FULLY_CONNECTED();
TfLiteRegistration Register_SOFTMAX();

class MicroOpResolver {
 public:
  virtual ~MicroOpResolver() {}
};

template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {
 public:
  explicit MicroMutableOpResolver() {}

  TfLiteStatus AddAdd() { return fake_register("AddAdd", tOpCount, &count_); }
  TfLiteStatus AddAveragePool2D() { return fake_register("AddAveragePool2D", tOpCount, &count_); }
  TfLiteStatus AddConcatenation() { return fake_register("AddConcatenation", tOpCount, &count_); }
  TfLiteStatus AddConv2D() { return fake_register("AddConv2D", tOpCount, &count_); }
  TfLiteStatus AddDepthwiseConv2D() { return fake_register("AddDepthwiseConv2D", tOpCount, &count_); }
  TfLiteStatus AddDequantize() { return fake_register("AddDequantize", tOpCount, &count_); }
  TfLiteStatus AddElu() { return fake_register("AddElu", tOpCount, &count_); }
  TfLiteStatus AddExp() { return fake_register("AddExp", tOpCount, &count_); }
  TfLiteStatus AddExpandDims() { return fake_register("AddExpandDims", tOpCount, &count_); }
  TfLiteStatus AddGather() { return fake_register("AddGather", tOpCount, &count_); }
  TfLiteStatus AddHardSwish() { return fake_register("AddHardSwish", tOpCount, &count_); }
  TfLiteStatus AddLeakyRelu() { return fake_register("AddLeakyRelu", tOpCount, &count_); }
  TfLiteStatus AddLog() { return fake_register("AddLog", tOpCount, &count_); }
  TfLiteStatus AddLogistic() { return fake_register("AddLogistic", tOpCount, &count_); }
  TfLiteStatus AddMaxPool2D() { return fake_register("AddMaxPool2D", tOpCount, &count_); }
  TfLiteStatus AddMaximum() { return fake_register("AddMaximum", tOpCount, &count_); }
  TfLiteStatus AddMean() { return fake_register("AddMean", tOpCount, &count_); }
  TfLiteStatus AddMinimum() { return fake_register("AddMinimum", tOpCount, &count_); }
  TfLiteStatus AddMul() { return fake_register("AddMul", tOpCount, &count_); }
  TfLiteStatus AddPack() { return fake_register("AddPack", tOpCount, &count_); }
  TfLiteStatus AddPad() { return fake_register("AddPad", tOpCount, &count_); }
  TfLiteStatus AddPadV2() { return fake_register("AddPadV2", tOpCount, &count_); }
  TfLiteStatus AddPrelu() { return fake_register("AddPrelu", tOpCount, &count_); }
  TfLiteStatus AddQuantize() { return fake_register("AddQuantize", tOpCount, &count_); }
  TfLiteStatus AddRelu() { return fake_register("AddRelu", tOpCount, &count_); }
  TfLiteStatus AddRelu6() { return fake_register("AddRelu6", tOpCount, &count_); }
  TfLiteStatus AddReshape() { return fake_register("AddReshape", tOpCount, &count_); }
  TfLiteStatus AddShape() { return fake_register("AddShape", tOpCount, &count_); }
  TfLiteStatus AddSplit() { return fake_register("AddSplit", tOpCount, &count_); }
  TfLiteStatus AddSplitV() { return fake_register("AddSplitV", tOpCount, &count_); }
  TfLiteStatus AddSqueeze() { return fake_register("AddSqueeze", tOpCount, &count_); }
  TfLiteStatus AddStridedSlice() { return fake_register("AddStridedSlice", tOpCount, &count_); }
  TfLiteStatus AddSub() { return fake_register("AddSub", tOpCount, &count_); }
  TfLiteStatus AddTanh() { return fake_register("AddTanh", tOpCount, &count_); }
  TfLiteStatus AddTranspose() { return fake_register("AddTranspose", tOpCount, &count_); }
  TfLiteStatus AddUnpack() { return fake_register("AddUnpack", tOpCount, &count_); }
  // The real ones take an optional kernel registration (e.g. an int8-only variant).
  TfLiteStatus AddFullyConnected(
      const TfLiteRegistration& registration = Register_FULLY_CONNECTED()) {
    (void)registration;
    return fake_register("AddFullyConnected", tOpCount, &count_);
  }
  TfLiteStatus AddSoftmax(const TfLiteRegistration& registration = Register_SOFTMAX()) {
    (void)registration;
    return fake_register("AddSoftmax", tOpCount, &count_);
  }
  unsigned int GetRegistrationLength() { return count_; }

 private:
  unsigned int count_ = 0;
};

}  // namespace tflite
