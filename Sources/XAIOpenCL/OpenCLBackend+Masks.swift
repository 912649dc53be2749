import COpenCL
import XAICore

/// The `int8` geometry `mask.cl` reads, lane by lane: image size, words per sample, grid size,
/// upsampled size, and the kind of mask.
struct MaskGeometry {
    enum Kind: Int { case segments = 0, rectangles = 1, grids = 2, ranks = 3 }
    var height = 0, width = 0, wordsPerSample = 0
    var gridH = 0, gridW = 0, upsampledH = 0, upsampledW = 0
    var kind: Kind

    var argument: KernelArg { .intVector8([height, width, wordsPerSample, gridH, gridW, upsampledH, upsampledW, kind.rawValue]) }
}

extension OpenCLBackend {
    /// The mask description as kernel arguments: geometry, then labels, bits, rects, cells, shifts
    /// (the unused ones bound to a dummy buffer). Only these compact arrays cross to the device.
    private func maskArgs(_ plan: MaskPlan) throws -> (args: [KernelArg], temporaries: [cl_mem]) {
        let (height, width) = (plan.height, plan.width)
        switch plan.spec {
        case .segments(let labels, let keep, let words):
            let bits = try temporary(keep)
            let g = MaskGeometry(height: height, width: width, wordsPerSample: words, kind: .segments)
            return ([g.argument, .buffer(try mem(labels, "mask")), .buffer(bits), .buffer(dummy), .buffer(dummy), .buffer(dummy)], [bits])
        case .rectangles(let rects):
            // Clipped to the image here, so the kernel compares without overflow for any Int.
            func span(_ start: Int, _ extent: Int, _ size: Int) -> (Int32, Int32) {
                let (end, overflow) = start.addingReportingOverflow(extent)
                let e = overflow ? (extent > 0 ? Int.max : Int.min) : end
                return (Int32(min(max(start, 0), size)), Int32(min(max(e, 0), size)))
            }
            let flat = rects.flatMap { r -> [Int32] in
                let (y0, y1) = span(r.top, r.height, height), (x0, x1) = span(r.left, r.width, width)
                return [y0, x0, y1, x1]
            }
            let r = try temporary(flat)
            let g = MaskGeometry(height: height, width: width, kind: .rectangles)
            return ([g.argument, .buffer(dummy), .buffer(dummy), .buffer(r), .buffer(dummy), .buffer(dummy)], [r])
        case .grids(let cells, let gh, let gw, let uh, let uw, let shifts):
            let flat = shifts.flatMap { [Int32(clamping: $0.0), Int32(clamping: $0.1)] }
            let cm = try temporary(cells)
            let sm: cl_mem
            do { sm = try temporary(flat) } catch { clReleaseMemObject(cm); throw error }
            let g = MaskGeometry(height: height, width: width, gridH: gh, gridW: gw, upsampledH: uh, upsampledW: uw, kind: .grids)
            return ([g.argument, .buffer(dummy), .buffer(dummy), .buffer(dummy), .buffer(cm), .buffer(sm)], [cm, sm])
        case .randomGrids(let r):
            // Drawn here by rise_grids: only the description crosses.
            let cm = try createBuffer(max(r.count * r.gridH * r.gridW, 1) * 4)
            let sm: cl_mem
            do { sm = try createBuffer(max(r.count, 1) * 8) } catch { clReleaseMemObject(cm); throw error }
            do {
                if r.count > 0 {
                    try launch("mask", "rise_grids", global: [r.count], [
                        .buffer(cm), .buffer(sm), .int(r.count), .int(r.gridH * r.gridW), .int(Int(Int32(bitPattern: r.keepThreshold))),
                        .int(r.cellH), .int(r.cellW),
                    ] + words(UInt64(r.first)) + words(r.seed))
                }
            } catch {
                clReleaseMemObject(cm)
                clReleaseMemObject(sm)
                throw error
            }
            let g = MaskGeometry(height: height, width: width, gridH: r.gridH, gridW: r.gridW, upsampledH: r.upsampledH, upsampledW: r.upsampledW,
                                 kind: .grids)
            return ([g.argument, .buffer(dummy), .buffer(dummy), .buffer(dummy), .buffer(cm), .buffer(sm)], [cm, sm])
        case .ranks(let ranks, let counts, let firstKept):
            // The plan bounds the counts by the pixel count (at most 2^24), so they fit an int.
            let c = try temporary(counts.map { Int32($0) })
            // The words-per-sample lane carries firstKept.
            let g = MaskGeometry(height: height, width: width, wordsPerSample: firstKept ? 1 : 0, kind: .ranks)
            return ([g.argument, .buffer(try mem(ranks, "mask")), .buffer(dummy), .buffer(c), .buffer(dummy), .buffer(dummy)], [c])
        }
    }

    public func masks(plan: MaskPlan) throws -> DeviceArray {
        let (args, temporaries) = try maskArgs(plan)
        // OpenCL defers the release until the queued kernel is done with them.
        defer { temporaries.forEach { clReleaseMemObject($0) } }
        let out = try allocate(plan.outputShape)
        try launch("mask", "mask_build", global: [plan.sampleCount * plan.height * plan.width],
                   [.buffer(try mem(out, "masks")), .int(plan.sampleCount), args[0]] + Array(args[1...]))
        return out
    }

    public func composite(image: DeviceArray, baseline: DeviceArray, plan: CompositePlan) throws -> DeviceArray {
        let (args, temporaries) = try maskArgs(plan.masks)
        defer { temporaries.forEach { clReleaseMemObject($0) } }
        let out = try allocate(plan.outputShape)
        try launch("mask", "mask_composite", global: [plan.masks.height * plan.masks.width, plan.masks.sampleCount], [
            .buffer(try mem(image, "composite")), .buffer(try mem(baseline, "composite")), .buffer(try mem(out, "composite")),
            .int(plan.masks.sampleCount), .int(plan.channels), args[0],
        ] + Array(args[1...]))
        return out
    }

    /// Permute, slice, pad and concat: a fill (pad) then one `copy_strided` launch per copied box.
    public func move(_ inputs: [DeviceArray], plan: MovementPlan) throws -> DeviceArray {
        let sources = try inputs.map { try mem($0, "move") }
        let out = try allocate(plan.outputShape)
        let om = try mem(out, "move")
        if let fill = plan.fill {
            try launch("elementwise", "fill", global: [plan.outputShape.count], [.buffer(om), .float(fill), .int(plan.outputShape.count)])
        }
        for c in plan.copies where c.count > 0 {
            guard c.dims.count <= 8 else { throw XAIError.unsupported(op: "move", reason: "more than 8 non-contiguous axes") }
            try launch("movement", "copy_strided", global: [c.count], [
                .buffer(sources[c.source]), .int(c.sourceOffset), .buffer(om), .int(c.destinationOffset), .int(c.count),
                .int(c.dims.count), .intVector8(c.dims), .intVector8(c.sourceStrides), .intVector8(c.destinationStrides),
            ])
        }
        return out
    }
}
