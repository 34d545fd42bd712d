import Foundation
import NIOCore
import OrgdCore
import OrgdProto
import OrgdWire
import Testing

@Suite("ttrpc test vectors")
struct ProtocolVectorTests {
    @Test("each request frame is what encoding the vector's fields gives")
    func encodeRequests() throws {
        for vector in try TestVectors.load().vectors {
            var request = Ttrpc_Request()
            request.service = vector.request.service
            request.method = vector.request.method
            request.payload = Data([UInt8](hex: vector.request.payload_hex))
            request.timeoutNano = vector.request.timeout_nano
            request.metadata = vector.request.metadata.map {
                var entry = Ttrpc_KeyValue()
                entry.key = $0.key
                entry.value = $0.value
                return entry
            }
            var frame = ByteBuffer()
            frame.writeFrame(streamID: vector.request.stream_id, type: .request, payload: try Envelope.encode(request, allocator: .init()).readableBytesView)
            #expect(Array(frame.readableBytesView).hex == vector.request_frame_hex, "\(vector.name)")
        }
    }

    @Test("each response frame is what the server's encoder writes for the vector's status and payload")
    func encodeResponses() throws {
        for vector in try TestVectors.load().vectors {
            var status = Google_Rpc_Status()
            status.code = vector.response.status_code
            status.message = vector.response.status_message
            let frame = Envelope.responseFrame(
                streamID: vector.response.stream_id, status: status,
                payload: [UInt8](hex: vector.response.payload_hex), allocator: .init()
            )
            #expect(Array(frame.readableBytesView).hex == vector.response_frame_hex, "\(vector.name)")
        }
    }

    @Test("decoding each frame gives back the vector's fields")
    func decodeBoth() throws {
        for vector in try TestVectors.load().vectors {
            var decoder = FrameDecoder()
            var requestBytes = ByteBuffer(bytes: [UInt8](hex: vector.request_frame_hex))
            guard case .frame(let header, let payload) = decoder.decodeFrame(from: &requestBytes) else {
                Issue.record("\(vector.name): request frame did not decode")
                continue
            }
            #expect(header == FrameHeader(length: UInt32(payload.readableBytes), streamID: vector.request.stream_id, type: .request))
            let request = try Envelope.decodeRequest(payload)
            #expect(request.service == vector.request.service)
            #expect(request.method == vector.request.method)
            #expect([UInt8](request.payload).hex == vector.request.payload_hex)
            #expect(request.timeoutNano == vector.request.timeout_nano)
            #expect(request.metadata.map { "\($0.key)=\($0.value)" } == vector.request.metadata.map { "\($0.key)=\($0.value)" })

            var responseBytes = ByteBuffer(bytes: [UInt8](hex: vector.response_frame_hex))
            guard case .frame(let responseHeader, let responsePayload) = decoder.decodeFrame(from: &responseBytes) else {
                Issue.record("\(vector.name): response frame did not decode")
                continue
            }
            #expect(responseHeader.type == .response)
            #expect(responseHeader.streamID == vector.response.stream_id)
            let response = try Envelope.decodeResponse(responsePayload)
            #expect(response.status.code == vector.response.status_code)
            #expect(response.status.message == vector.response.status_message)
            #expect([UInt8](response.payload).hex == vector.response.payload_hex)
        }
    }

    @Test("an RPCError with fields round-trips through google.rpc.Status and BadRequest")
    func errorDetails() {
        let error = RPCError.invalidArgument(field: "name", "required")
        let back = RPCError(status: error.status)
        #expect(back == error)
        #expect(back.fieldViolations.first?.field == "name")
    }
}
