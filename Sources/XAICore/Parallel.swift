import Dispatch

/// Runs `body(0) ... body(iterations - 1)` on Dispatch's worker threads and returns when all have
/// finished. The iterations must touch disjoint memory: Dispatch wants a `Sendable` closure, and
/// this vouches for `body` (which may capture raw pointers) on that condition.
public func concurrentForEach(_ iterations: Int, _ body: (Int) -> Void) {
    guard iterations > 1 else {
        if iterations == 1 { body(0) }
        return
    }
    withoutActuallyEscaping(body) { escaping in
        let work = UncheckedSendable(escaping)
        DispatchQueue.concurrentPerform(iterations: iterations) { work.value($0) }
    }
}

/// A value that crosses into concurrent code on its user's word that the accesses are disjoint.
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
