/**
 * Subscriber watermarks (cascades): the consumer `watermark:<node>` a branch
 * keeps on its provider, at the lowest position the branch and the nodes
 * below it still need (engine/watermark.ts). Its name, told apart from a
 * node's own consumer and from copy pins. Pure: no I/O.
 */

const PREFIX = 'watermark:';

/** The provider consumer that holds `node`'s watermark. */
export function watermarkConsumerName(node: string): string {
  return `${PREFIX}${node}`;
}

export function isWatermarkConsumer(consumerName: string): boolean {
  return consumerName.startsWith(PREFIX);
}

/** The node a watermark consumer holds for, or null for another consumer. */
export function watermarkOwner(consumerName: string): string | null {
  return isWatermarkConsumer(consumerName) ? consumerName.slice(PREFIX.length) : null;
}
