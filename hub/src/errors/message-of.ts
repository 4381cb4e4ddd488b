/** What an error says, for logs and settlement errors: viem's short message and details, or its message. */
export function messageOf(error: unknown): string {
  if (error && typeof error === 'object') {
    const { shortMessage, details, message } = error as { shortMessage?: string; details?: string; message?: string };
    return [shortMessage ?? message, details].filter(Boolean).join(': ');
  }
  return String(error);
}
