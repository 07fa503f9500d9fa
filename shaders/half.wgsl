// 16-bit value bits -> f32, exactly (integer arithmetic: no float16 capability, no flushing).
// `dtype` is DTYPE_BF16 or DTYPE_F16.
fn half_to_f32(bits: u32, dtype: u32) -> f32 {
    if (dtype == DTYPE_F16) {
        let sign = (bits & 0x8000u) << 16u;
        let exponent = (bits >> 10u) & 0x1fu;
        let mantissa = bits & 0x3ffu;
        if (exponent == 0x1fu) {
            return bitcast<f32>(sign | 0x7f800000u | (mantissa << 13u));
        }
        if (exponent != 0u) {
            return bitcast<f32>(sign | ((exponent + 112u) << 23u) | (mantissa << 13u));
        }
        // Zero or subnormal: mantissa * 2^-24, exact in f32.
        let v = f32(mantissa) * 5.9604644775390625e-8;
        return select(v, -v, sign != 0u);
    }
    return bitcast<f32>(bits << 16u);
}
