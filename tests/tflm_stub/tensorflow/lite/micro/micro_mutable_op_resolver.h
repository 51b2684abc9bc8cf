// TEST-ONLY stand-in (tests/tflm_stub/README.md) for
// tensorflow/lite/micro/micro_mutable_op_resolver.h: default-constructible template, one
// TfLiteStatus Add*() per builtin the exporter may emit, each with the pinned header's parameter
// list (a kernel registration with a default where the real one has it). Like the real
// resolver it refuses an op twice and more ops than tOpCount, and says why through MicroPrintf.
#pragma once
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/kernels/micro_ops.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"

// Stand-in only (fake_tflm.cpp): records the registration, refuses a repeat or an overflow.
TfLiteStatus fake_tflm_register(const char* name, unsigned int capacity, unsigned int* count);

namespace tflite {

template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {
  public:
    explicit MicroMutableOpResolver() {}

    TfLiteStatus AddAdd(const TfLiteRegistration& registration = Register_ADD()) {
        (void)registration;
        return fake_tflm_register("AddAdd", tOpCount, &count_);
    }
    TfLiteStatus AddAveragePool2D(
        const TfLiteRegistration& registration = Register_AVERAGE_POOL_2D()) {
        (void)registration;
        return fake_tflm_register("AddAveragePool2D", tOpCount, &count_);
    }
    TfLiteStatus AddConcatenation() {
        return fake_tflm_register("AddConcatenation", tOpCount, &count_);
    }
    TfLiteStatus AddConv2D(const TfLiteRegistration& registration = Register_CONV_2D()) {
        (void)registration;
        return fake_tflm_register("AddConv2D", tOpCount, &count_);
    }
    TfLiteStatus AddDepthwiseConv2D(
        const TfLiteRegistration& registration = Register_DEPTHWISE_CONV_2D()) {
        (void)registration;
        return fake_tflm_register("AddDepthwiseConv2D", tOpCount, &count_);
    }
    TfLiteStatus AddDequantize() {
        return fake_tflm_register("AddDequantize", tOpCount, &count_);
    }
    TfLiteStatus AddElu() {
        return fake_tflm_register("AddElu", tOpCount, &count_);
    }
    TfLiteStatus AddExp() {
        return fake_tflm_register("AddExp", tOpCount, &count_);
    }
    TfLiteStatus AddExpandDims() {
        return fake_tflm_register("AddExpandDims", tOpCount, &count_);
    }
    TfLiteStatus AddGather() {
        return fake_tflm_register("AddGather", tOpCount, &count_);
    }
    TfLiteStatus AddHardSwish() {
        return fake_tflm_register("AddHardSwish", tOpCount, &count_);
    }
    TfLiteStatus AddLeakyRelu() {
        return fake_tflm_register("AddLeakyRelu", tOpCount, &count_);
    }
    TfLiteStatus AddLog() {
        return fake_tflm_register("AddLog", tOpCount, &count_);
    }
    TfLiteStatus AddLogistic() {
        return fake_tflm_register("AddLogistic", tOpCount, &count_);
    }
    TfLiteStatus AddMaxPool2D(const TfLiteRegistration& registration = Register_MAX_POOL_2D()) {
        (void)registration;
        return fake_tflm_register("AddMaxPool2D", tOpCount, &count_);
    }
    TfLiteStatus AddMaximum() {
        return fake_tflm_register("AddMaximum", tOpCount, &count_);
    }
    TfLiteStatus AddMean() {
        return fake_tflm_register("AddMean", tOpCount, &count_);
    }
    TfLiteStatus AddMinimum() {
        return fake_tflm_register("AddMinimum", tOpCount, &count_);
    }
    TfLiteStatus AddMul(const TfLiteRegistration& registration = Register_MUL()) {
        (void)registration;
        return fake_tflm_register("AddMul", tOpCount, &count_);
    }
    TfLiteStatus AddPack() {
        return fake_tflm_register("AddPack", tOpCount, &count_);
    }
    TfLiteStatus AddPad(const TfLiteRegistration& registration = Register_PAD()) {
        (void)registration;
        return fake_tflm_register("AddPad", tOpCount, &count_);
    }
    TfLiteStatus AddPadV2() {
        return fake_tflm_register("AddPadV2", tOpCount, &count_);
    }
    TfLiteStatus AddPrelu() {
        return fake_tflm_register("AddPrelu", tOpCount, &count_);
    }
    TfLiteStatus AddQuantize() {
        return fake_tflm_register("AddQuantize", tOpCount, &count_);
    }
    TfLiteStatus AddRelu() {
        return fake_tflm_register("AddRelu", tOpCount, &count_);
    }
    TfLiteStatus AddRelu6() {
        return fake_tflm_register("AddRelu6", tOpCount, &count_);
    }
    TfLiteStatus AddReshape() {
        return fake_tflm_register("AddReshape", tOpCount, &count_);
    }
    TfLiteStatus AddShape() {
        return fake_tflm_register("AddShape", tOpCount, &count_);
    }
    TfLiteStatus AddSplit() {
        return fake_tflm_register("AddSplit", tOpCount, &count_);
    }
    TfLiteStatus AddSplitV() {
        return fake_tflm_register("AddSplitV", tOpCount, &count_);
    }
    TfLiteStatus AddSqueeze() {
        return fake_tflm_register("AddSqueeze", tOpCount, &count_);
    }
    TfLiteStatus AddStridedSlice() {
        return fake_tflm_register("AddStridedSlice", tOpCount, &count_);
    }
    TfLiteStatus AddSub() {
        return fake_tflm_register("AddSub", tOpCount, &count_);
    }
    TfLiteStatus AddTanh() {
        return fake_tflm_register("AddTanh", tOpCount, &count_);
    }
    TfLiteStatus AddTranspose() {
        return fake_tflm_register("AddTranspose", tOpCount, &count_);
    }
    TfLiteStatus AddUnpack() {
        return fake_tflm_register("AddUnpack", tOpCount, &count_);
    }
    TfLiteStatus AddFullyConnected(
        const TfLiteRegistration& registration = Register_FULLY_CONNECTED()) {
        (void)registration;
        return fake_tflm_register("AddFullyConnected", tOpCount, &count_);
    }
    TfLiteStatus AddSoftmax(const TfLiteRegistration& registration = Register_SOFTMAX()) {
        (void)registration;
        return fake_tflm_register("AddSoftmax", tOpCount, &count_);
    }
    unsigned int GetRegistrationLength() {
        return count_;
    }

  private:
    unsigned int count_ = 0;
};

}  // namespace tflite
