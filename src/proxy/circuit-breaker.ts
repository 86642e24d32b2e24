/** closed: traffic flows; open: answer 503 at once; half_open: one trial request decides. */
export type CircuitState = 'closed' | 'open' | 'half_open';

export const CIRCUIT_STATE_VALUE: Record<CircuitState, number> = { closed: 0, open: 1, half_open: 2 };

/**
 * Per-upstream circuit breaker on consecutive failures. After `failureThreshold` failures in a row
 * the circuit opens for `cooldownMs`; then exactly one trial request is let through, and its
 * outcome closes or re-opens the circuit.
 */
export class CircuitBreaker {
  state: CircuitState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private trialInFlight = false;

  constructor(
    private readonly failureThreshold: number,
    private readonly cooldownMs: number,
    private readonly onChange: (from: CircuitState, to: CircuitState, failures: number) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether a request may go to the upstream now. A `true` in half_open reserves the trial slot. */
  allow(): boolean {
    if (this.state === 'closed') return true;
    if (this.state === 'open') {
      if (this.now() - this.openedAt < this.cooldownMs) return false;
      this.transition('half_open');
    }
    if (this.trialInFlight) return false;
    this.trialInFlight = true;
    return true;
  }

  /** Milliseconds until an open circuit lets a trial through (for Retry-After). */
  retryAfterMs(): number {
    return this.state === 'open' ? Math.max(0, this.cooldownMs - (this.now() - this.openedAt)) : 0;
  }

  onSuccess(): void {
    this.failures = 0;
    if (this.state === 'half_open') {
      this.trialInFlight = false;
      this.transition('closed');
    }
  }

  onFailure(): void {
    this.failures++;
    if (this.state === 'half_open') {
      this.trialInFlight = false;
      this.open();
    } else if (this.state === 'closed' && this.failures >= this.failureThreshold) {
      this.open();
    }
  }

  /** A trial that ended without an answer either way (client left) frees the slot. */
  onAbandoned(): void {
    if (this.state === 'half_open') this.trialInFlight = false;
  }

  private open(): void {
    this.openedAt = this.now();
    this.transition('open');
  }

  private transition(to: CircuitState): void {
    const from = this.state;
    if (from === to) return;
    this.state = to;
    this.onChange(from, to, this.failures);
  }
}

/**
 * Retry budget (token bucket): every request deposits `percent/100` of a token, a retry spends
 * one. Retries can then add at most that share of load, plus a small burst, so they cannot
 * multiply traffic against a struggling upstream.
 */
export class RetryBudget {
  private tokens: number;

  constructor(
    private readonly percent: number,
    private readonly burst = 3,
  ) {
    this.tokens = burst;
  }

  deposit(): void {
    if (this.tokens < this.burst) this.tokens = Math.min(this.burst, this.tokens + this.percent / 100);
  }

  trySpend(): boolean {
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
