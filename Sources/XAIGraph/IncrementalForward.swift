import XAICore

/// Incremental inference (the exact scheme of Krypton, Nakandala et al., SIGMOD 2019): copies of one
/// image that differ from it only inside one window each. Through each layer the difference spreads
/// only over the window's projective field, so every value of a copy is the clean image's activation
/// outside a window and a small patch inside it. Convolutions and pooling recompute just the
/// patch (from a tile: the clean map with the copy's input patch laid over it, padded to the
/// kernel's footprint), elementwise ops apply to the patch, residual sums and concatenations join
/// patches over the union of their windows. Where a window grows past a fraction of its map, or at an
/// op this planner does not know, the copies are materialised as whole maps and the rest of the
/// graph runs as an ordinary batch.

extension Executor {
    /// Window extents per value for a whole set of copies, so that every batch of them runs its
    /// layers at the same shapes (the backends create and tune one primitive per shape).
    public struct IncrementalPlan: Sendable {
        /// Patch height and width of each value that runs on patches; the others run on whole maps.
        let extents: [String: Extent]
        public let fullBeyond: Double

        /// Values computed on patches.
        public var patchedValues: Int { extents.count }
    }

    /// What one incremental pass computed.
    public struct IncrementalPass: Sendable {
        /// The graph outputs for the batch of copies.
        public let outputs: [String: DeviceArray]
        /// Multiply-adds of the convolutions as run, and as a full forward of the batch runs them.
        public let convolutionMACs: Int, fullConvolutionMACs: Int
    }

    /// Plans incremental inference for copies of the image of `clean` changed inside `windows` (all
    /// the copies that will run, in any batches): where each value's patches lie and how large
    /// they are, from the shapes alone.
    /// - Parameters:
    ///   - clean: a forward pass of the image alone (batch 1) run with `forBackward: true`.
    ///   - windows: where each copy differs from the image.
    ///   - fullBeyond: a layer whose window covers more than this fraction of its output map runs on
    ///     whole maps, and so does everything after it that reads it.
    public func incrementalPlan(clean: Pass, windows: WindowSet, fullBeyond: Double = 0.5) throws -> IncrementalPlan {
        let (inputName, _) = try cleanImage(clean)
        var regions: [String: Region] = [inputName: .window(windows)]
        var extents: [String: Extent] = [:]
        for node in graph.nodes {
            let inputs: [Region?] = node.inputs.map { name in
                if name.isEmpty { return nil }
                return regions[name] ?? .shared
            }
            let shapes = node.inputs.map { clean.values[$0]?.shape ?? graph.initializers[$0]?.shape }
            guard inputs.contains(where: { if case .shared? = $0 { return false }; return $0 != nil }) else {
                for o in node.outputs { regions[o] = .shared }
                continue
            }
            let out = clean.values[node.outputs[0]]?.shape
            if let out, out.rank == 4, let win = Geometry.window(node, inputs, shapes, out: out, minimum: nil),
               Geometry.covers(win, out, fullBeyond) {
                regions[node.outputs[0]] = .window(win)
                extents[node.outputs[0]] = Extent(height: win.height, width: win.width)
            } else {
                for o in node.outputs { regions[o] = .whole }
            }
        }
        return IncrementalPlan(extents: extents, fullBeyond: fullBeyond)
    }

    /// Runs copies of an image through the graph incrementally.
    /// - Parameters:
    ///   - clean: a forward pass of the image alone (batch 1) run with `forBackward: true`, so that
    ///     it holds every activation.
    ///   - patches: copy `n`'s input inside its window, `[N, C, windows.height, windows.width]`;
    ///     outside the window copy `n` is the clean image.
    ///   - windows: where each copy's patch lies in the image.
    ///   - plan: from ``incrementalPlan(clean:windows:fullBeyond:)`` for a set of copies that
    ///     includes these; without one, the batch plans for itself (its shapes then vary from batch
    ///     to batch).
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for a clean pass without its
    ///   activations, and any error of a node wrapped in ``XAIError/inNode(node:op:underlying:)``.
    public func forward(copiesOf clean: Pass, patches: DeviceArray, at windows: WindowSet, plan: IncrementalPlan? = nil) throws -> IncrementalPass {
        let (inputName, image) = try cleanImage(clean)
        let plan = try plan ?? incrementalPlan(clean: clean, windows: windows)
        var run = IncrementalRun(executor: self, clean: clean, plan: plan)
        var values: [String: Incremental] = [inputName: .patched(Patch(values: patches, windows: windows, clean: image))]
        for (node, lastRead) in zip(graph.nodes, lastReads) {
            do {
                let args: [Incremental?] = try node.inputs.map { name in
                    if name.isEmpty { return nil }
                    if let v = values[name] { return v }
                    if let t = graph.initializers[name] { return .shared(.host(t)) }
                    throw XAIError.invalidArgument(parameter: "inputs", value: name, reason: "no node computes it before this node reads it")
                }
                for (name, v) in zip(node.outputs, try run.step(node, args)) { values[name] = v }
            } catch let e as XAIError {
                throw e.inNode(node.name, op: node.op.name)
            }
            for name in lastRead { values[name] = nil }
        }
        var outputs: [String: DeviceArray] = [:]
        for o in graph.outputs {
            guard let v = values[o.name] else {
                throw XAIError.invalidArgument(parameter: "outputs", value: o.name, reason: "no node of \(graph.name) computes this output")
            }
            guard case .device(let a) = try run.materialized(v), a.shape[0] == windows.count else {
                throw XAIError.unsupported(op: "incremental inference", reason: "output '\(o.name)' does not depend on the input")
            }
            outputs[o.name] = a
        }
        return IncrementalPass(outputs: outputs, convolutionMACs: run.macs, fullConvolutionMACs: run.fullMACs)
    }

    private func cleanImage(_ clean: Pass) throws -> (String, DeviceArray) {
        guard let inputInfo = graph.imageInput else {
            throw XAIError.invalidArgument(parameter: "graph", value: graph.name, reason: "has no image input")
        }
        guard case .device(let image)? = clean.values[inputInfo.name], image.shape.rank == 4, image.shape[0] == 1 else {
            throw XAIError.invalidArgument(parameter: "clean", value: inputInfo.name,
                                           reason: "incremental inference needs a forward pass of one [1, C, H, W] image run with forBackward: true")
        }
        return (inputInfo.name, image)
    }
}

/// A patch's height and width.
struct Extent: Sendable, Hashable {
    let height: Int, width: Int
}

/// Where a value differs between copies, for planning.
enum Region {
    /// The same for every copy.
    case shared
    case window(WindowSet)
    /// Anywhere.
    case whole
}

/// Window arithmetic, shared by planning and running.
enum Geometry {
    /// The windows of a node's output when it can run on patches (before deciding whether they are
    /// small enough), each at least `minimum`; `nil` when it must run on whole maps.
    /// - Parameters:
    ///   - inputs: each input's region (`nil` for an absent optional input).
    ///   - shapes: each input's shape (the clean map for a windowed one).
    ///   - out: the clean output's shape `[1, C, H, W]`.
    static func window(_ node: Node, _ inputs: [Region?], _ shapes: [Shape?], out: Shape, minimum: Extent?) -> WindowSet? {
        func windowed(_ i: Int) -> WindowSet? { if i < inputs.count, case .window(let w)? = inputs[i] { return w }; return nil }
        func sharedOrAbsent(_ i: Int) -> Bool { if i >= inputs.count { return true }; if case .shared? = inputs[i] { return true }; return inputs[i] == nil }
        let (h, w) = (out[2], out[3])
        switch node.op {
        case .conv(let p, _, let autoPad):
            guard let x = windowed(0), inputs.count >= 2, case .shared? = inputs[1], let xs = shapes[0], let ws = shapes[1], xs.rank == 4, ws.rank == 4,
                  sharedOrAbsent(2), inputs.count < 4 || inputs[3] == nil || windowed(3) != nil else { return nil }
            let q = resolved(p, autoPad, xs, ws)
            var rows = affected(x.tops, x.height, kernel: ws[2], stride: q.strideH, pad: q.padTop, dilation: q.dilationH, size: h)
            var cols = affected(x.lefts, x.width, kernel: ws[3], stride: q.strideW, pad: q.padLeft, dilation: q.dilationW, size: w)
            if let r = windowed(3) {
                rows = union(rows, r.tops, r.height)
                cols = union(cols, r.lefts, r.width)
            }
            return fit(rows, cols, h, w, minimum)
        case .pool(let p, let autoPad):
            // Average pooling's divisor depends on where a window meets the padding, unless the
            // padding counts or there is none.
            let noPads = p.padTop == 0 && p.padLeft == 0 && p.padBottom == 0 && p.padRight == 0 && autoPad == .explicit
            guard let x = windowed(0), let xs = shapes[0], xs.rank == 4, p.kind == .max || (!p.ceilMode && (p.countIncludePad || noPads)) else { return nil }
            let q = resolved(p, autoPad, xs)
            return fit(affected(x.tops, x.height, kernel: q.kernelH, stride: q.strideH, pad: q.padTop, dilation: 1, size: h),
                       affected(x.lefts, x.width, kernel: q.kernelW, stride: q.strideW, pad: q.padLeft, dilation: 1, size: w), h, w, minimum)
        case .unary, .batchNorm, .identity, .cast:
            // Pointwise in space: the input's window.
            guard let x = windowed(0), (1..<max(inputs.count, 1)).allSatisfy(sharedOrAbsent) else { return nil }
            return x
        case .binary:
            guard inputs.count == 2 else { return nil }
            switch (windowed(0), windowed(1)) {
            case (let a?, let b?):
                return fit(union(spans(a.tops, a.height), b.tops, b.height), union(spans(a.lefts, a.width), b.lefts, b.width), h, w, minimum)
            case (let a?, nil):
                guard case .shared? = inputs[1], let c = shapes[1], constantInSpace(c) else { return nil }
                return a
            case (nil, let b?):
                guard case .shared? = inputs[0], let c = shapes[0], constantInSpace(c) else { return nil }
                return b
            default:
                return nil
            }
        case .concat(let axis):
            let parts = inputs.indices.compactMap(windowed)
            guard parts.count == inputs.count, let first = parts.first, axis == 1 || axis == -3 else { return nil }
            var rows = spans(first.tops, first.height), cols = spans(first.lefts, first.width)
            for q in parts.dropFirst() {
                rows = union(rows, q.tops, q.height)
                cols = union(cols, q.lefts, q.width)
            }
            return fit(rows, cols, h, w, minimum)
        default:
            return nil
        }
    }

    /// Whether windows this size are worth running as patches.
    static func covers(_ win: WindowSet, _ out: Shape, _ fullBeyond: Double) -> Bool {
        Double(win.height * win.width) <= fullBeyond * Double(out[2] * out[3])
    }

    /// Per copy, the output positions along one axis whose kernel window meets the input rows
    /// `start ..< start + length` (clipped to the output; at least one position, so that a change
    /// no output reads still has a window).
    static func affected(_ starts: [Int], _ length: Int, kernel: Int, stride: Int, pad: Int, dilation: Int, size: Int) -> [(Int, Int)] {
        starts.map { a in
            let b = a + length
            var lo = ceilDiv(a + pad - (kernel - 1) * dilation, stride), hi = floorDiv(b - 1 + pad, stride) + 1
            lo = max(lo, 0)
            hi = min(hi, size)
            if hi <= lo { lo = min(lo, size - 1); hi = lo + 1 }
            return (lo, hi)
        }
    }

    static func spans(_ starts: [Int], _ length: Int) -> [(Int, Int)] { starts.map { ($0, $0 + length) } }

    static func union(_ spans: [(Int, Int)], _ starts: [Int], _ length: Int) -> [(Int, Int)] {
        zip(spans, starts).map { s, a in (min(s.0, a), max(s.1, a + length)) }
    }

    /// One shared extent per axis for the copies' spans (at least `minimum`), each window placed
    /// over its span and inside the map.
    static func fit(_ rows: [(Int, Int)], _ cols: [(Int, Int)], _ height: Int, _ width: Int, _ minimum: Extent?) -> WindowSet {
        func place(_ spans: [(Int, Int)], _ size: Int, _ least: Int) -> ([Int], Int) {
            let length = min(size, max(1, least, spans.map { $0.1 - $0.0 }.max() ?? 1))
            return (spans.map { max(0, min($0.0, size - length)) }, length)
        }
        let (tops, h) = place(rows, height, minimum?.height ?? 1), (lefts, w) = place(cols, width, minimum?.width ?? 1)
        return WindowSet(tops: tops, lefts: lefts, height: h, width: w)
    }

    /// A constant operand that is the same at every pixel (a per-channel scale), so that it applies
    /// to a patch as to the whole map.
    static func constantInSpace(_ s: Shape) -> Bool {
        s.count == 1 || (s.rank <= 4 && s.dims.suffix(2).allSatisfy { $0 == 1 } && (s.rank < 4 || s[0] == 1))
    }

    static func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }
    static func ceilDiv(_ a: Int, _ b: Int) -> Int { -floorDiv(-a, b) }
}

/// Copy `n` of a value: `clean` (`[1, C, H, W]`) outside `windows`' rectangle `n`, `values[n]` inside.
private struct Patch {
    let values: DeviceArray
    let windows: WindowSet
    let clean: DeviceArray
}

/// A value during incremental inference.
private enum Incremental {
    /// The same for every copy (weights, shape arithmetic on constants).
    case shared(Value)
    case patched(Patch)
    /// Whole maps, one per copy.
    case full(DeviceArray)

    var patch: Patch? { if case .patched(let p) = self { return p }; return nil }
    var shared: Value? { if case .shared(let v) = self { return v }; return nil }
}

private struct IncrementalRun {
    let executor: Executor
    let clean: Executor.Pass
    let plan: Executor.IncrementalPlan
    var macs = 0, fullMACs = 0

    init(executor: Executor, clean: Executor.Pass, plan: Executor.IncrementalPlan) {
        self.executor = executor
        self.clean = clean
        self.plan = plan
    }

    var backend: any Backend { executor.backend }

    func cleanValue(_ node: Node, _ i: Int) throws -> DeviceArray {
        guard i < node.outputs.count, case .device(let a)? = clean.values[node.outputs[i]], a.shape.rank == 4 else {
            throw XAIError.invalidArgument(parameter: "clean", value: node.outputs.indices.contains(i) ? node.outputs[i] : "\(i)",
                                           reason: "the clean pass holds no [1, C, H, W] activation of this name")
        }
        return a
    }

    /// Whole maps for a patched value; other values as they are.
    func materialized(_ v: Incremental) throws -> Value {
        switch v {
        case .shared(let s): return s
        case .full(let a): return .device(a)
        case .patched(let p):
            let (h, w) = (p.clean.shape[2], p.clean.shape[3])
            let whole = WindowSet(tops: Array(repeating: 0, count: p.windows.count), lefts: Array(repeating: 0, count: p.windows.count), height: h, width: w)
            return .device(try backend.splice(clean: p.clean, patches: p.values, windows: p.windows, tiles: whole, fill: nil))
        }
    }

    /// A patched value over `win` (which contains its windows): tiles of the clean map with the patch laid in.
    func spliced(_ p: Patch, _ win: WindowSet) throws -> DeviceArray {
        win == p.windows ? p.values : try backend.splice(clean: p.clean, patches: p.values, windows: p.windows, tiles: win, fill: 0)
    }

    mutating func step(_ node: Node, _ args: [Incremental?]) throws -> [Incremental] {
        let batched = args.contains { if case .shared? = $0 { return false }; return $0 != nil }
        guard batched else { return try executor.evaluate(node, args.map { $0?.shared }).map(Incremental.shared) }
        if let extent = plan.extents[node.outputs[0]] {
            let regions: [Region?] = args.map { a in
                switch a {
                case nil: return nil
                case .shared?: return .shared
                case .patched(let p)?: return .window(p.windows)
                case .full?: return .whole
                }
            }
            let shapes: [Shape?] = args.map { a in
                switch a {
                case nil: return nil
                case .shared(let v)?: return v.shape
                case .patched(let p)?: return p.clean.shape
                case .full(let f)?: return f.shape
                }
            }
            let out = try cleanValue(node, 0)
            if let win = Geometry.window(node, regions, shapes, out: out.shape, minimum: extent) {
                return [.patched(Patch(values: try checked(try patch(node, args, win, out), win, out), windows: win, clean: out))]
            }
        }
        // Whole maps.
        let whole = try args.map { try $0.map(materialized) }
        if case .conv(let p, _, let autoPad) = node.op, whole.count > 1, let x = whole[0], let w = whole[1] {
            let params = resolved(p, autoPad, x.shape, w.shape)
            if let out = try? params.outputShape(input: x.shape, weight: w.shape) {
                let work = out.count * w.shape[1] * w.shape[2] * w.shape[3]
                (macs, fullMACs) = (macs + work, fullMACs + work)
            }
        }
        return try executor.evaluate(node, whole).map { v in
            if case .device(let a) = v { return .full(a) }
            return .shared(v)
        }
    }

    /// The node's output over `win` (the windows ``Geometry/window(_:_:_:out:minimum:)`` gave for it).
    mutating func patch(_ node: Node, _ args: [Incremental?], _ win: WindowSet, _ out: DeviceArray) throws -> DeviceArray {
        func device(_ i: Int) throws -> DeviceArray? {
            guard i < args.count, let v = args[i]?.shared else { return nil }
            return try executor.device(v, node.inputs[i])
        }
        func unpadded<P>(_ p: P, _ clear: (inout P) -> Void) -> P { var q = p; clear(&q); return q }
        switch node.op {
        case .conv(let p, let act, let autoPad):
            guard let x = args[0]?.patch, let weight = try device(1) else { break }
            let q = resolved(p, autoPad, x.clean.shape, weight.shape)
            let perPixel = out.shape[1] * weight.shape[1] * weight.shape[2] * weight.shape[3]
            macs += win.count * perPixel * win.height * win.width
            fullMACs += win.count * perPixel * out.shape[2] * out.shape[3]
            let tiles = WindowSet(tops: win.tops.map { $0 * q.strideH - q.padTop }, lefts: win.lefts.map { $0 * q.strideW - q.padLeft },
                                  height: (win.height - 1) * q.strideH + (weight.shape[2] - 1) * q.dilationH + 1,
                                  width: (win.width - 1) * q.strideW + (weight.shape[3] - 1) * q.dilationW + 1)
            // A 1x1 stride-1 layer reads exactly its output's windows: the patch itself.
            let xt = tiles == x.windows ? x.values : try backend.splice(clean: x.clean, patches: x.values, windows: x.windows, tiles: tiles, fill: 0)
            let rt = try (args.count > 3 ? args[3]?.patch : nil).map { try spliced($0, win) }
            return try backend.conv2d(xt, weight: weight, bias: try device(2), residual: rt,
                                      params: unpadded(q) { ($0.padTop, $0.padLeft, $0.padBottom, $0.padRight) = (0, 0, 0, 0) }, activation: act,
                                      exact: false)
        case .pool(let p, let autoPad):
            guard let x = args[0]?.patch else { break }
            let q = resolved(p, autoPad, x.clean.shape)
            let tiles = WindowSet(tops: win.tops.map { $0 * q.strideH - q.padTop }, lefts: win.lefts.map { $0 * q.strideW - q.padLeft },
                                  height: (win.height - 1) * q.strideH + q.kernelH, width: (win.width - 1) * q.strideW + q.kernelW)
            let xt = try backend.splice(clean: x.clean, patches: x.values, windows: x.windows, tiles: tiles, fill: p.kind == .max ? -.infinity : 0)
            return try backend.pool2d(xt, params: unpadded(q) { ($0.padTop, $0.padLeft, $0.padBottom, $0.padRight, $0.ceilMode) = (0, 0, 0, 0, false) })
        default:
            // Pointwise ops, sums and concatenations: the operands over the output's windows.
            let operands: [Value?] = try args.map { a in
                switch a {
                case .patched(let p)?: return .device(try spliced(p, win))
                case .shared(let v)?: return v
                default: return nil
                }
            }
            if case .device(let y)? = try executor.evaluate(node, operands).first { return y }
        }
        throw XAIError.unsupported(op: node.op.name, reason: "incremental inference planned patches for an op it cannot run on them")
    }

    /// A patch's values, checked against the windows and the clean map they go with.
    func checked(_ y: DeviceArray, _ win: WindowSet, _ clean: DeviceArray) throws -> DeviceArray {
        guard y.shape == Shape([win.count, clean.shape[1], win.height, win.width]) else {
            throw XAIError.shapeMismatch(op: "incremental inference", expected: "patches [\(win.count), \(clean.shape[1]), \(win.height), \(win.width)]", got: [y.shape])
        }
        return y
    }
}
