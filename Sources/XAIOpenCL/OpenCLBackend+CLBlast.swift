import CCLBlast
import COpenCL
import XAICore

extension OpenCLBackend {
    /// C = alpha * op(A) * op(B) through CLBlast (row-major; strided-batched when `batch > 1`).
    /// Returns `false`, having queued nothing, when an operand's strides are unit along neither
    /// axis, which BLAS cannot express; the caller then runs its own kernel.
    func clblastGemm(m: Int, n: Int, k: Int, batch: Int,
                     a: cl_mem, aOffset: Int, aRow: Int, aCol: Int, aBatch: Int,
                     b: cl_mem, bOffset: Int, bRow: Int, bCol: Int, bBatch: Int,
                     c: cl_mem, cOffset: Int, ldc: Int, cBatch: Int, alpha: Float) throws -> Bool {
        // op(X) is rows x cols with element (i, j) at i * rowStride + j * colStride: row-major as
        // stored when the column stride is 1, the transpose of a row-major matrix when the row
        // stride is 1. With a single row (or column) the other stride is never used.
        func operand(rows: Int, cols: Int, rowStride: Int, colStride: Int) -> (CLBlastTranspose, Int)? {
            if colStride == 1, rows == 1 || rowStride >= cols { return (CLBlastTransposeNo, rows == 1 ? max(rowStride, cols, 1) : rowStride) }
            if rowStride == 1, cols == 1 || colStride >= rows { return (CLBlastTransposeYes, cols == 1 ? max(colStride, rows, 1) : colStride) }
            return nil
        }
        guard let (ta, lda) = operand(rows: m, cols: k, rowStride: aRow, colStride: aCol),
              let (tb, ldb) = operand(rows: k, cols: n, rowStride: bRow, colStride: bCol),
              ldc >= n else { return false }
        var q: cl_command_queue? = queue
        let status: CLBlastStatusCode
        count { $0.kernelLaunches += 1 }
        var event: cl_event?
        status = withUnsafeMutablePointer(to: &event) { e in
            let recorded = profilesKernels ? e : nil
            if batch == 1 {
                return CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb,
                                    0, c, cOffset, ldc, &q, recorded)
            }
            return CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, ta, tb, m, n, k, alpha,
                                              a, aOffset, lda, aBatch, b, bOffset, ldb, bBatch,
                                              0, c, cOffset, ldc, cBatch, batch, &q, recorded)
        }
        if let event { profile.add(batch == 1 ? "CLBlastSgemm" : "CLBlastSgemmStridedBatched", event) }
        guard status == CLBlastSuccess else {
            let code = status.rawValue
            if code == CL_MEM_OBJECT_ALLOCATION_FAILURE || code == CL_OUT_OF_RESOURCES {
                throw XAIError.outOfMemory(op: "CLBlast sgemm \(m)x\(n)x\(k)", bytes: 0, device: deviceLabel)
            }
            throw XAIError.openCL(call: batch == 1 ? "CLBlastSgemm" : "CLBlastSgemmStridedBatched", status: code,
                                  name: code > -1000 ? openCLStatusName(code) : "CLBlast status \(code)", device: deviceLabel)
        }
        return true
    }
}
