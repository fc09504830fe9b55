/**
 * The server's open connections and whether each is answering a request, so that a drained server
 * can close the ones that are not. Node's server.close() closes keep-alive connections between
 * requests, but not one that a client opened and has sent nothing on yet (HTTP clients open a
 * spare connection ahead of need; undici does). Such a connection held the closing server open
 * until the client gave up on it (4 s for Node's fetch; a raw connection that sent nothing held it
 * for over two minutes in a test), and so SIGTERM's exit waited with nothing left to do.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionTracker {
  /**
   * Destroys every connection that has no request being answered (Node's own close leaves fresh
   * ones open), and from then on each other one as soon as its last answer ends.
   */
  closeWhenUnused(): void;
}

export function trackConnections(server: Server): ConnectionTracker {
  // requests being answered per connection (more than one when a client pipelines)
  const open = new Map<Socket, number>();
  let closing = false;
  server.on('connection', (socket: Socket) => {
    open.set(socket, 0);
    socket.once('close', () => open.delete(socket));
  });
  server.on('request', (req, res) => {
    const socket = req.socket;
    open.set(socket, (open.get(socket) ?? 0) + 1);
    res.once('close', () => {
      const n = open.get(socket);
      if (n === undefined) return;
      open.set(socket, n - 1);
      if (closing && n === 1) socket.destroy();
    });
  });
  return {
    closeWhenUnused() {
      closing = true;
      for (const [socket, requests] of open) if (requests === 0) socket.destroy();
    },
  };
}
