import type { ChainService } from '../chain/chain.service';
import type { OperatorSigner } from '../crypto/operator-signer';

/** What `GET /v1/info` answers: who runs this hub, where, and on what terms. */
export class InfoService {
  constructor(
    private readonly chainId: number,
    private readonly chain: ChainService,
    private readonly signer: OperatorSigner,
    private readonly version: string,
  ) {}

  async info() {
    const hub = await this.chain.hubInfo();
    return {
      hub: hub.hub,
      chainId: this.chainId,
      registry: hub.registry,
      token: hub.token,
      operator: this.signer.address,
      publicKey: this.signer.publicKey,
      fee: hub.fee,
      pendingFee: hub.pendingFee,
      stake: hub.stake,
      freeFunds: hub.freeFunds,
      status: hub.status,
      consumersPaused: hub.consumersPaused,
      version: this.version,
    };
  }
}
