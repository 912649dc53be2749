import CLoops
import XAICore

/// The memory-bound loops between convolutions (ReLU and its gradient, same-shape arithmetic,
/// pooling over channel blocks), in C (`CLoops`) where the compiler vectorizes them: Swift keeps
/// the same loops over captured pointers scalar, and they then cost a backward pass as much as a
/// third of its convolutions. Each matches the plain loop of its op bit for bit.
enum VectorLoops {
    /// The gradient through `op` where a vectorised loop exists (ReLU, clip and so ReLU6), from
    /// the op's input or output alike (their derivatives test the same bounds); `false` otherwise.
    static func unaryBackward(_ op: UnaryOp, grad g: UnsafePointer<Float>, value v: UnsafePointer<Float>,
                              out: UnsafeMutablePointer<Float>, _ range: Range<Int>) -> Bool {
        let i = range.lowerBound
        switch op {
        case .relu: xai_relu_backward(g + i, v + i, out + i, range.count)
        case .clip(let lo, let hi): xai_clip_backward(g + i, v + i, out + i, range.count, lo, hi)
        default: return false
        }
        return true
    }

    static func relu(_ x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        let i = range.lowerBound
        xai_relu(x + i, out + i, range.count)
    }

    static func binary(_ op: BinaryOp, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        let code: Int32
        switch op {
        case .add: code = 0
        case .sub: code = 1
        case .mul: code = 2
        case .div: code = 3
        }
        let i = range.lowerBound
        xai_binary(code, a + i, b + i, out + i, range.count)
    }
}

/// The pooling windows of one plane, (start, end, padded extent) per output row and column, as
/// `CLoops` takes them.
struct PoolWindows {
    let w: Int, oh: Int, ow: Int
    let rows: [Int], columns: [Int]
    let isMax: Bool, countIncludePad: Bool

    init(h: Int, w: Int, oh: Int, ow: Int, params p: Pool2DParams) {
        (self.w, self.oh, self.ow) = (w, oh, ow)
        rows = (0..<oh).flatMap { oy -> [Int] in
            let r = poolWindow(oy, size: h, kernel: p.kernelH, stride: p.strideH, padBefore: p.padTop, padAfter: p.padBottom)
            return [r.start, r.end, r.paddedExtent]
        }
        columns = (0..<ow).flatMap { ox -> [Int] in
            let c = poolWindow(ox, size: w, kernel: p.kernelW, stride: p.strideW, padBefore: p.padLeft, padAfter: p.padRight)
            return [c.start, c.end, c.paddedExtent]
        }
        (isMax, countIncludePad) = (p.kind == .max, p.countIncludePad)
    }

    /// Pools one block of `lanes` (16, 8 or 1) channels.
    func pool(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, lanes: Int) {
        rows.withUnsafeBufferPointer { r in
            columns.withUnsafeBufferPointer { c in
                xai_pool_plane(src, dst, w, oh, ow, r.baseAddress, c.baseAddress, Int32(lanes), isMax ? 1 : 0, countIncludePad ? 1 : 0)
            }
        }
    }

    /// Adds one block's pooling gradient into `dst`.
    func poolBackward(_ src: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, lanes: Int) {
        rows.withUnsafeBufferPointer { r in
            columns.withUnsafeBufferPointer { c in
                xai_pool_backward_plane(src, gy, dst, w, oh, ow, r.baseAddress, c.baseAddress, Int32(lanes), isMax ? 1 : 0, countIncludePad ? 1 : 0)
            }
        }
    }
}
