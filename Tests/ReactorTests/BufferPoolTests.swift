import Glibc
import Reactor
import Testing

/// Buffers that hold memory only while bytes are in flight (issue 16).
@Suite struct BufferPoolTests {
    @Test func pooledBufferHoldsNoStorageUntilBytesArriveAndGivesItBackWhenEmpty() {
        let pool = BufferPool(chunkSize: 16 * 1024, keepLimit: 4)
        let buffer = ByteBuffer(pool: pool)
        #expect(!buffer.hasStorage && buffer.capacity == 0 && buffer.isEmpty)
        #expect(pool.outstanding == 0)

        buffer.append(Array("GET / HTTP/1.1\r\n".utf8))
        #expect(buffer.capacity == 16 * 1024)
        #expect(pool.outstanding == 1)
        #expect(Array(buffer.readable) == Array("GET / HTTP/1.1\r\n".utf8))

        // Bytes still in flight: the storage stays.
        buffer.releaseStorage()
        #expect(buffer.hasStorage && pool.outstanding == 1)
        #expect(Array(buffer.readable) == Array("GET / HTTP/1.1\r\n".utf8))

        buffer.consume(buffer.readableBytes)
        buffer.releaseStorage()
        #expect(!buffer.hasStorage && buffer.capacity == 0)
        #expect(pool.outstanding == 0 && pool.mapped == 1)

        // A read takes a chunk again: the one given back.
        buffer.ensureStorage()
        #expect(buffer.writableBytes == 16 * 1024)
        #expect(pool.outstanding == 1 && pool.mapped == 1)
    }

    @Test func growingPastOneChunkReturnsTheChunkAndKeepsTheBytes() {
        let pool = BufferPool(chunkSize: 4096, keepLimit: 4)
        let buffer = ByteBuffer(pool: pool)
        let bytes = (0..<6000).map { UInt8(truncatingIfNeeded: $0) }
        buffer.append(Array(bytes[0..<3000]))
        #expect(pool.outstanding == 1)
        buffer.append(Array(bytes[3000...]))
        #expect(buffer.capacity >= 6000)
        #expect(pool.outstanding == 0, "the chunk went back when the buffer outgrew it")
        #expect(Array(buffer.readable) == bytes)
        buffer.consume(6000)
        buffer.releaseStorage()
        #expect(!buffer.hasStorage)
    }

    @Test func poolKeepsAtMostItsLimitAndTrimGivesBackChunksNobodyTook() {
        let pool = BufferPool(chunkSize: 4096, keepLimit: 3)
        let buffers = (0..<5).map { _ in ByteBuffer(pool: pool) }
        for buffer in buffers { buffer.ensureStorage() }
        #expect(pool.outstanding == 5 && pool.mapped == 5)
        for buffer in buffers { buffer.releaseStorage() }
        // A burst: two chunks over the limit are unmapped at once.
        #expect(pool.outstanding == 0 && pool.mapped == 3)

        // Steady traffic takes one chunk between trims: that one stays.
        pool.trim()
        buffers[0].ensureStorage()
        buffers[0].releaseStorage()
        #expect(pool.trim() == 2)
        #expect(pool.mapped == 1)
        // Idle for a whole interval: the last one goes too.
        #expect(pool.trim() == 1)
        #expect(pool.mapped == 0)
    }

    @Test func buffersDroppedWithStorageGiveItBack() {
        let pool = BufferPool(chunkSize: 4096, keepLimit: 2)
        do {
            let buffer = ByteBuffer(pool: pool)
            buffer.append(Array("pending".utf8))
            #expect(pool.outstanding == 1)
        }
        #expect(pool.outstanding == 0 && pool.mapped == 1)
    }
}
