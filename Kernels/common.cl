// Shared by every kernel family (prepended to each program): the pointwise functions of
// XAICore's UnaryOp, by code: 0 identity, 1 relu, 2 clip(p0, p1), 3 leaky relu(p0), 4 sigmoid,
// 5 tanh, 6 silu, 7 hard sigmoid(p0, p1), 8 hard swish.

inline float unary_apply(int code, float x, float p0, float p1) {
    switch (code) {
    case 1: return x > 0.0f ? x : 0.0f;
    case 2: return fmin(fmax(x, p0), p1);
    case 3: return x >= 0.0f ? x : p0 * x;
    case 4: return 1.0f / (1.0f + exp(-x));
    case 5: return tanh(x);
    case 6: return x / (1.0f + exp(-x));
    case 7: return fmin(fmax(p0 * x + p1, 0.0f), 1.0f);
    case 8: return x * fmin(fmax(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    default: return x;
    }
}
