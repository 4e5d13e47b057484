"""The aspiration state machine, declared as data: each state's typed parameters with units, defaults
and timeouts, so the GUI can show and edit them and every transition can be logged with its reason."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from drivers.units import NlPerS, Seconds, Um, UmPerS


class State(str, Enum):
    IDLE = "Idle"
    SEARCHING = "Searching"
    SELECTING = "Selecting"
    TRACKING = "Tracking"
    POSITIONING_Z = "PositioningZ"
    APPROACHING = "Approaching"
    ASPIRATING = "Aspirating"
    VERIFYING = "Verifying"
    SUCCESS = "Success"
    FAILED = "Failed"
    RETARGET = "Retarget"
    ABORTED = "Aborted"
    FAULT = "Fault"


TERMINAL = {State.SUCCESS, State.ABORTED, State.FAULT, State.FAILED}

#: Allowed transitions (anything may go to ABORTED or FAULT).
TRANSITIONS: dict[State, set[State]] = {
    State.IDLE: {State.SEARCHING},
    State.SEARCHING: {State.SELECTING, State.RETARGET},
    State.SELECTING: {State.TRACKING, State.SEARCHING},
    State.TRACKING: {State.POSITIONING_Z, State.RETARGET},
    State.POSITIONING_Z: {State.APPROACHING, State.RETARGET},
    State.APPROACHING: {State.ASPIRATING, State.RETARGET},
    State.ASPIRATING: {State.VERIFYING, State.RETARGET},
    State.VERIFYING: {State.SUCCESS, State.RETARGET, State.FAILED},
    State.RETARGET: {State.SEARCHING, State.FAILED},
}


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class SearchingParams(Params):
    timeout_s: Seconds = Field(3.0, gt=0, description="move to another field when no target appears")


class SelectingParams(Params):
    confirm_frames: int = Field(4, ge=1, description="frames the policy must keep the same target")


class TrackingParams(Params):
    offset_px: float = Field(100.0, ge=0, description="distance kept between target and tip (paper: 100 px)")
    tolerance_px: float = Field(25.0, gt=0, description="the head oscillates laterally by several um")
    settle_frames: int = Field(4, ge=1)
    timeout_s: Seconds = Field(4.0, gt=0)


class PositioningZParams(Params):
    tolerance_um: Um = Field(0.3, gt=0)
    speed_um_s: UmPerS = Field(60.0, gt=0)
    timeout_s: Seconds = Field(3.0, gt=0)
    no_reading_s: Seconds = Field(0.5, gt=0, description="a target seen this long without a single depth reading"
                                  " is passed over (the oracle reads none where no cell is: debris)")
    min_observations: int = Field(6, ge=1, description="depth measurements fused before trusting the estimate")
    edge_margin_um: Um = Field(0.1, ge=0, description="a cell read this close to either end of what its depth"
                               " source measures (the classifier: a 4 um span) sits at the edge and may lie well"
                               " beyond it: the focus steps toward it, or it is passed over")
    refocus_step_um: Um = Field(2.0, ge=0, description="focus step toward a cell read at the range's edge")
    max_refocus_um: Um = Field(4.0, ge=0, description="farthest the focus may go from where the trial began")


class ApproachingParams(Params):
    speed_um_s: UmPerS = Field(40.0, gt=0, description="rate at which the kept distance shrinks")
    pump_on_distance_um: Um = Field(16.0, gt=0, description="start aspirating when the head is this close")
    standoff_um: Um = Field(4.0, ge=0, description="a cell that does not swim is held this far from the opening"
                            " (head centre) while the flow draws it in: the glass pushed over a cell lying on the"
                            " floor would leave it beneath the opening")
    timeout_s: Seconds = Field(4.0, gt=0)


class AspiratingParams(Params):
    rate_nl_s: NlPerS = Field(1.2, gt=0, description="pump rate (paper: 1.2 nL/s)")
    timeout_s: Seconds = Field(2.5, gt=0)
    capture_radius_um: Um = Field(1.5, gt=0, description="head this far past the opening counts as inside")
    drawn_entry_reach_um: Um = Field(3.0, gt=0, description="a cell that does not swim, drawn in by the flow,"
                                     " counts as entered on vanishing only if last seen this close to the opening"
                                     " (one lost farther out lies in the glass's shadow)")
    post_entry_s: Seconds = Field(0.4, ge=0, description="keep aspirating this long after entry (draws the cell"
                                  " well inside, past where it could swim back out), then stop")


class VerifyingParams(Params):
    hold_s: Seconds = Field(0.8, gt=0, description="time the cell must stay inside the pipette")
    min_bore_frames: int = Field(5, ge=1, description="frames in which a head must be seen inside the bore, through"
                                 " the glass: a head lost from sight at the opening may have entered, passed"
                                 " beneath the glass, or swum up out of focus there")
    withdraw_um: Um = Field(15.0, ge=0, description="the tip backs away along its axis: a cell inside goes with"
                            " it, while debris or a cell that passed beneath is uncovered where the target was")
    moved_um: Um = Field(3.0, gt=0, description="how far a head inside moves: while the pump runs, a sighting in"
                         " the bore whose path stays this close to it for a quarter second, in the dish or in"
                         " the image, or comes this far down the bore toward the opening, is no head inside"
                         " (debris or a cell beneath or above the glass seen through it, dust on the optics);"
                         " after it stops, a head inside goes with the glass as the tip backs away: this far in"
                         " the dish and the image, and less than this up or down the bore")
    left_behind_radius_um: Um = Field(3.0, gt=0, description="a head this close to the path from the target's"
                                      " last sighting to the opening, after the tip backed away, means the"
                                      " target was not aspirated")
    bystander_radius_um: Um = Field(1.5, gt=0, description="a head this close to where another head (debris, a"
                                    " still cell) was when the pump started is that one, not the target")


class RetargetParams(Params):
    max_attempts: int = Field(3, ge=1)


STATE_PARAMS: dict[State, type[Params]] = {
    State.SEARCHING: SearchingParams, State.SELECTING: SelectingParams, State.TRACKING: TrackingParams,
    State.POSITIONING_Z: PositioningZParams, State.APPROACHING: ApproachingParams,
    State.ASPIRATING: AspiratingParams, State.VERIFYING: VerifyingParams, State.RETARGET: RetargetParams,
}


class MachineParams(BaseModel):
    """All states' parameters in one editable object."""

    model_config = ConfigDict(extra="forbid")

    searching: SearchingParams = Field(default_factory=SearchingParams)
    selecting: SelectingParams = Field(default_factory=SelectingParams)
    tracking: TrackingParams = Field(default_factory=TrackingParams)
    positioning_z: PositioningZParams = Field(default_factory=PositioningZParams)
    approaching: ApproachingParams = Field(default_factory=ApproachingParams)
    aspirating: AspiratingParams = Field(default_factory=AspiratingParams)
    verifying: VerifyingParams = Field(default_factory=VerifyingParams)
    retarget: RetargetParams = Field(default_factory=RetargetParams)


def check_transition(src: State, dst: State) -> None:
    if dst in (State.ABORTED, State.FAULT):
        return
    if dst not in TRANSITIONS.get(src, set()):
        raise ValueError(f"illegal transition {src.value} -> {dst.value}")
