"""Every topic name in one place: the contract's defaults under a configurable prefix."""

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicNames:
    prefix: str = ""

    def _name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    # Inputs (contract section 2)
    @property
    def cancellations(self) -> str:
        return self._name("waiver.cancellations")

    @property
    def applications(self) -> str:
        return self._name("waiver.applications")

    @property
    def delivery_receipts(self) -> str:
        return self._name("waiver.delivery-receipts")

    @property
    def subscribers(self) -> str:
        return self._name("waiver.subscribers")

    @property
    def reward_choices(self) -> str:
        return self._name("waiver.reward-choices")

    @property
    def deadlines(self) -> str:
        return self._name("waiver.deadlines")

    # Outputs
    @property
    def decisions(self) -> str:
        return self._name("waiver.decisions")

    @property
    def refunds(self) -> str:
        return self._name("waiver.refunds")

    @property
    def sms(self) -> str:
        return self._name("waiver.notifications.sms")

    @property
    def email(self) -> str:
        return self._name("waiver.notifications.email")

    @property
    def rewards(self) -> str:
        return self._name("waiver.rewards")

    @property
    def reward_choice_results(self) -> str:
        return self._name("waiver.reward-choices.results")

    @property
    def dead_letter(self) -> str:
        return self._name("waiver.dead-letter")

    @property
    def round_progress(self) -> str:
        """One record per (round, partition) when that partition's fan-out is done."""
        return self._name("waiver.round-progress")

    # Internal, co-partitioned with the customer inputs
    @property
    def round_triggers(self) -> str:
        return self._name("waiver.internal.round-triggers")

    @property
    def rerouted(self) -> str:
        """Customer events that arrived on the wrong partition (wrong or missing key)."""
        return self._name("waiver.internal.rerouted")

    def outputs(self) -> list[str]:
        return [self.decisions, self.refunds, self.sms, self.email, self.dead_letter,
                self.round_progress, self.rewards, self.reward_choice_results]

    def customer_inputs(self) -> list[str]:
        """Every topic keyed by customer and co-partitioned with the customer table."""
        return [self.cancellations, self.applications, self.delivery_receipts,
                self.subscribers, self.reward_choices, self.round_triggers, self.rerouted]
