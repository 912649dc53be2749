import Foundation
import XAICore

// Host evaluation of the shape and mask arithmetic exporters emit (``HostArithmetic``), and of
// Expand on constants. Values are float32 tensors holding integers and booleans exactly; every
// result is computed in float64 and rounded once.

/// Elementwise `f` over tensors broadcast together (numpy rules).
func broadcastMap(_ inputs: [Tensor], op: String, _ f: ([Double]) -> Double) throws -> Tensor {
    var shape = Shape([])
    for t in inputs {
        guard let s = Shape.broadcast(shape, t.shape) else {
            throw XAIError.shapeMismatch(op: op, expected: "shapes that broadcast together", got: inputs.map(\.shape))
        }
        shape = s
    }
    _ = try Shape(validating: shape.dims, what: "\(op) output")
    let strides = inputs.map { $0.shape.broadcastStrides(to: shape) }
    var out = [Float](repeating: 0, count: shape.count)
    var index = [Int](repeating: 0, count: shape.rank)
    var args = [Double](repeating: 0, count: inputs.count)
    for o in 0..<shape.count {
        for (k, t) in inputs.enumerated() {
            var off = 0
            for d in 0..<shape.rank { off += index[d] * strides[k][d] }
            args[k] = Double(t.scalars[off])
        }
        out[o] = Float(f(args))
        var d = shape.rank - 1
        while d >= 0 { index[d] += 1; if index[d] < shape[d] { break }; index[d] = 0; d -= 1 }
    }
    return Tensor(unchecked: shape, out)
}

/// ONNX Expand: `data` broadcast with `target` (either may have the larger extent on an axis).
func expanded(_ data: Tensor, to target: [Int]) throws -> Tensor {
    let t = try Shape(validating: target.map { max($0, 1) }, what: "Expand shape")
    guard Shape.broadcast(data.shape, t) != nil else {
        throw XAIError.shapeMismatch(op: "Expand", expected: "a shape \(data.shape) broadcasts with", got: [t])
    }
    return try broadcastMap([data, Tensor(shape: t, repeating: 0)], op: "Expand") { $0[0] }
}

/// The output shape of ONNX Expand on an input of shape `input`.
func expandedShape(_ input: Shape, _ target: [Int]) throws -> Shape {
    let t = try Shape(validating: target.map { max($0, 1) }, what: "Expand shape")
    guard let s = Shape.broadcast(input, t) else {
        throw XAIError.shapeMismatch(op: "Expand", expected: "a shape \(input) broadcasts with", got: [t])
    }
    return s
}

extension HostArithmetic {
    /// Evaluates the op on host tensors.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for a missing input or an index
    ///   out of range, ``XAIError/shapeMismatch(op:expected:got:)`` for shapes that do not fit.
    public func evaluate(_ inputs: [Tensor?]) throws -> Tensor {
        func input(_ i: Int) throws -> Tensor {
            guard i < inputs.count, let t = inputs[i] else {
                throw XAIError.invalidArgument(parameter: "inputs", value: "\(i)", reason: "\(onnxName) needs input \(i)")
            }
            return t
        }
        func truth(_ v: Double) -> Bool { v != 0 }
        func elementwise(_ count: Int, _ f: ([Double]) -> Double) throws -> Tensor {
            try broadcastMap(try (0..<count).map(input), op: onnxName, f)
        }
        switch self {
        case .equal: return try elementwise(2) { $0[0] == $0[1] ? 1 : 0 }
        case .less: return try elementwise(2) { $0[0] < $0[1] ? 1 : 0 }
        case .greater: return try elementwise(2) { $0[0] > $0[1] ? 1 : 0 }
        case .lessOrEqual: return try elementwise(2) { $0[0] <= $0[1] ? 1 : 0 }
        case .greaterOrEqual: return try elementwise(2) { $0[0] >= $0[1] ? 1 : 0 }
        case .not: return try elementwise(1) { truth($0[0]) ? 0 : 1 }
        case .and: return try elementwise(2) { truth($0[0]) && truth($0[1]) ? 1 : 0 }
        case .or: return try elementwise(2) { truth($0[0]) || truth($0[1]) ? 1 : 0 }
        case .where: return try elementwise(3) { truth($0[0]) ? $0[1] : $0[2] }
        case .mod:
            return try elementwise(2) { a in
                guard a[1] != 0 else { return .nan }
                let r = Foundation.fmod(a[0], a[1])
                return r != 0 && (r < 0) != (a[1] < 0) ? r + a[1] : r
            }
        case .fmod: return try elementwise(2) { a in Foundation.fmod(a[0], a[1]) }
        case .integerDivide:
            return try elementwise(2) { a in a[1] == 0 ? .nan : (a[0] / a[1]).rounded(.towardZero) }
        case .neg: return try elementwise(1) { -$0[0] }
        case .abs: return try elementwise(1) { Swift.abs($0[0]) }
        case .isNaN: return try elementwise(1) { $0[0].isNaN ? 1 : 0 }
        case .ceil: return try elementwise(1) { $0[0].rounded(.up) }
        case .floor: return try elementwise(1) { $0[0].rounded(.down) }
        case .min: return try elementwise(inputs.count) { $0.min() ?? .nan }
        case .max: return try elementwise(inputs.count) { $0.max() ?? .nan }
        case .range:
            let (start, limit, delta) = (Double(try input(0).scalars.first ?? 0), Double(try input(1).scalars.first ?? 0),
                                         Double(try input(2).scalars.first ?? 0))
            guard delta != 0, start.isFinite, limit.isFinite, delta.isFinite else {
                throw XAIError.invalidArgument(parameter: "delta", value: "\(delta)", reason: "Range: needs a finite, non-zero delta and finite bounds")
            }
            let steps = ((limit - start) / delta).rounded(.up)
            guard steps < Double(1 << 40) else {
                throw XAIError.tooLarge(what: "Range output of \(steps) values", bytes: Int.max, limit: Limits.tensorBytes)
            }
            let count = Swift.max(Int(steps), 0)
            _ = try Shape(validating: [count], what: "Range output")
            return Tensor(unchecked: [count], (0..<count).map { Float(start + Double($0) * delta) })
        case .tile:
            let x = try input(0)
            let repeats = try input(1).integers("repeats")
            guard repeats.count == x.shape.rank, repeats.allSatisfy({ $0 >= 0 }) else {
                throw XAIError.invalidArgument(parameter: "repeats", value: "\(repeats)", reason: "Tile: one non-negative count per axis of \(x.shape)")
            }
            let shape = try Shape(validating: zip(x.shape.dims, repeats).map { d, r in
                let (n, overflow) = d.multipliedReportingOverflow(by: r)
                return overflow ? -1 : n
            }, what: "Tile output")
            let strides = x.shape.strides
            var out = [Float](repeating: 0, count: shape.count)
            var index = [Int](repeating: 0, count: shape.rank)
            for o in 0..<shape.count {
                var off = 0
                for d in 0..<shape.rank { off += (index[d] % x.shape[d]) * strides[d] }
                out[o] = x.scalars[off]
                var d = shape.rank - 1
                while d >= 0 { index[d] += 1; if index[d] < shape[d] { break }; index[d] = 0; d -= 1 }
            }
            return Tensor(unchecked: shape, out)
        case .scatterND, .gatherND:
            let data = try input(0), indices = try input(1)
            guard indices.shape.rank >= 1 else {
                throw XAIError.invalidArgument(parameter: "indices", value: "\(indices.shape)", reason: "\(onnxName): indices need at least one axis")
            }
            let k = indices.shape[indices.shape.rank - 1]
            guard k >= 1, k <= data.shape.rank else {
                throw XAIError.invalidArgument(parameter: "indices", value: "\(indices.shape)", reason: "\(onnxName): the last axis must index 1 to \(data.shape.rank) axes of \(data.shape)")
            }
            let ids = try indices.integers("indices")
            let slab = data.shape.dims[k...].reduce(1, *)
            let strides = data.shape.strides
            let tuples = ids.count / k
            func offset(_ t: Int) throws -> Int {
                var off = 0
                for d in 0..<k {
                    let n = data.shape[d], raw = ids[t * k + d], i = raw < 0 ? raw + n : raw
                    guard (0..<n).contains(i) else {
                        throw XAIError.invalidArgument(parameter: "indices", value: "\(raw)", reason: "\(onnxName): out of range \(n) on axis \(d)")
                    }
                    off += i * strides[d]
                }
                return off
            }
            if self == .gatherND {
                let shape = try Shape(validating: Array(indices.shape.dims.dropLast()) + Array(data.shape.dims[k...]), what: "GatherND output")
                var out: [Float] = []
                out.reserveCapacity(shape.count)
                for t in 0..<tuples {
                    let o = try offset(t)
                    out.append(contentsOf: data.scalars[o..<(o + slab)])
                }
                return Tensor(unchecked: shape, out)
            }
            let updates = try input(2)
            guard updates.shape.count == tuples * slab else {
                throw XAIError.shapeMismatch(op: "ScatterND", expected: "updates of \(tuples) x \(slab) values", got: [data.shape, indices.shape, updates.shape])
            }
            var out = data.scalars
            for t in 0..<tuples {
                let o = try offset(t)
                for j in 0..<slab { out[o + j] = updates.scalars[t * slab + j] }
            }
            return Tensor(unchecked: data.shape, out)
        }
    }
}
